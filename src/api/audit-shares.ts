import { fstatSync, readSync } from 'node:fs'

/** Bytes read per step when counting lines appended to the audit log. */
const CHUNK = 1 << 20
/**
 * Bytes counted per call at most: a process that fell far behind (a restart onto a full log, an
 * idle `keatrail serve` beside a busy `keatrail run`, a reopen onto a file others filled)
 * catches up a step per look instead of stalling a request for seconds (~10M row lines in a
 * 1 GiB log; ~0.55 µs a row line, ~0.4 µs an entry: 2 MiB ≈ 10–12 ms, measured). A read looks
 * twice (before it runs, and at its entry), a batch attribution once per row.
 */
const CATCH_UP = 2 * CHUNK
/** Batch ids remembered (a row line names its batch, not its key); the least recently used forgotten first. */
const BATCHES = 10_000
/** Bytes before the counted end compared at each look: a file cut and written again past it since is told apart by them. */
const TAIL = 64

const ROW = Buffer.from('{"batch":"')
const KEY = Buffer.from('"key":"')
const BATCH_FIELD = Buffer.from(',"batch":"')
const QUOTE = 0x22

/**
 * Each API key's bytes in the audit log, counted from the file itself: every line appended since
 * the last look (this process's, or another's: `keatrail serve` beside `keatrail run` appends to
 * the same file) is charged to its key (a batch attribution's rows to their batch entry's key).
 * One key repeating batch attributions (~10 MB each) otherwise filled the whole
 * api.auditLogMaxBytes and every other key's reads were refused until an operator rotated it.
 *
 * What the file held when this process opened it is counted too (a restart gives no key a fresh
 * share), CATCH_UP bytes per look: a 1 GiB log is counted over its first ~250 reads (or ~500
 * rows of a batch), the counts short of the file meanwhile. A file replaced (logrotate's rename and create, then
 * SIGHUP) or cut (copytruncate) is counted again from its start; batch ids are kept (a batch's
 * rows may go on in the new file).
 */
export class AuditShares {
  private readonly bytes = new Map<string, number>()
  private readonly batchKeys = new Map<string, string>()
  /** The file counted (device and inode) and how far. */
  private file: { dev: number, ino: number } | undefined
  private upTo = 0
  /** The file's bytes just before upTo, as last read. */
  private tail: Buffer = Buffer.alloc(0)
  /** Inside a line longer than CHUNK (not an entry of keatrail's): skipped to its end. */
  private skipping = false
  private readonly buf = Buffer.allocUnsafe(CHUNK)
  private readonly probe = Buffer.allocUnsafe(TAIL)
  /** The batch of the last row line charged, and its key. */
  private lastRow: { id: Buffer, batch: string, key: string } | undefined

  /** Bytes of `key`'s lines counted so far. */
  used (key: string): number {
    return this.bytes.get(key) ?? 0
  }

  /** Counts what was appended to the file open as `fd` (readable) since the last call (up to CATCH_UP bytes); its size. */
  sync (fd: number): number {
    const st = fstatSync(fd)
    // The first look counts the file from its start too, a step at a time like any catching up.
    if (this.file === undefined) this.file = { dev: st.dev, ino: st.ino }
    if (st.dev !== this.file.dev || st.ino !== this.file.ino || st.size < this.upTo || !this.tailHolds(fd)) {
      this.file = { dev: st.dev, ino: st.ino }
      this.bytes.clear()
      this.upTo = 0
      this.tail = Buffer.alloc(0)
      this.skipping = false
    }
    const from = this.upTo
    // At most CATCH_UP: a step is read only when a whole one still fits.
    while (this.upTo < st.size && this.upTo - from <= CATCH_UP - CHUNK) {
      const asked = Math.min(CHUNK, st.size - this.upTo)
      const n = readSync(fd, this.buf, 0, asked, this.upTo)
      if (n <= 0) break
      // Fewer bytes than asked: the file was cut meanwhile (the next call starts it again).
      const toEnd = n < asked || this.upTo + n >= st.size
      const got = this.buf.subarray(0, n)
      let start = 0
      for (let nl = got.indexOf(10); nl !== -1; nl = got.indexOf(10, start)) {
        if (this.skipping) this.skipping = false
        else this.charge(got.subarray(start, nl))
        start = nl + 1
      }
      if (start === 0 && n === CHUNK) {
        // No end of line in a whole chunk: not one of keatrail's entries (each is far shorter).
        this.skipping = true
        start = n
      }
      this.upTo += start
      // The file's last line is not whole yet (being written): counted once its end is there.
      if (toEnd && start < n) break
    }
    if (this.upTo !== from) this.keepTail(fd)
    return st.size
  }

  /**
   * This process appended `line` (of `key`'s; `batch`: an attribution's entry) to a file of
   * `before` bytes: counted without reading it back when nothing else was appended in between
   * (one fstat instead of two reads per row of a batch).
   */
  appended (fd: number, key: string, line: Buffer, before: number, batch?: string): void {
    if (this.file === undefined || this.upTo !== before || this.skipping || fstatSync(fd).size !== before + line.length) return
    if (batch !== undefined) this.remember(batch, key)
    this.add(key, line.length)
    this.upTo += line.length
    this.tail = line.length >= TAIL ? Buffer.from(line.subarray(line.length - TAIL)) : Buffer.concat([this.tail, line]).subarray(-TAIL)
  }

  private keepTail (fd: number): void {
    const length = Math.min(TAIL, this.upTo)
    this.tail = Buffer.from(this.probe.subarray(0, length === 0 ? 0 : readSync(fd, this.probe, 0, length, this.upTo - length)))
  }

  /** The file still has the bytes last read before upTo (a copytruncate followed by more lines than were counted has not). */
  private tailHolds (fd: number): boolean {
    const length = this.tail.length
    if (length === 0) return true
    const n = readSync(fd, this.probe, 0, length, this.upTo - length)
    return n === length && this.probe.subarray(0, length).equals(this.tail)
  }

  private add (key: string, bytes: number): void {
    this.bytes.set(key, this.used(key) + bytes)
  }

  private remember (batch: string, key: string): void {
    // An entry naming the last row's batch anew (another key's): its rows are looked up again.
    if (this.lastRow?.batch === batch && this.lastRow.key !== key) this.lastRow = undefined
    this.batchKeys.delete(batch)
    this.batchKeys.set(batch, key)
    if (this.batchKeys.size <= BATCHES) return
    let oldest = this.batchKeys.keys().next().value as string
    // The batch of the last row is in use though not looked up again (compared as bytes).
    if (oldest === this.lastRow?.batch) {
      const kept = this.batchKeys.get(oldest) as string
      this.batchKeys.delete(oldest)
      this.batchKeys.set(oldest, kept)
      oldest = this.batchKeys.keys().next().value as string
    }
    this.batchKeys.delete(oldest)
  }

  /**
   * Charges one line (without its end of line) to its key. Read by position rather than parsed
   * (a 1 GiB log is ~10M row lines): an entry is `{"time":…,"key":"<name>",…` and an
   * attribution's ends `,"batch":"<id>"}`; a row starts `{"batch":"<id>",`. A client's text
   * inside an entry has every quote escaped, so it cannot look like those.
   */
  private charge (line: Buffer): void {
    // Searches bounded by the line (one view of the read step each) and no other Buffer made
    // for a row of a running batch.
    const len = line.length + 1
    if (line.length > ROW.length && line.compare(ROW, 0, ROW.length, 0, ROW.length) === 0) {
      const end = line.indexOf(QUOTE, ROW.length)
      if (end < 0) return
      // A batch's rows come one after another: the last row's batch is compared as bytes first.
      const last = this.lastRow
      if (last !== undefined && line.compare(last.id, 0, last.id.length, ROW.length, end) === 0) { this.add(last.key, len); return }
      const batch = line.toString('latin1', ROW.length, end)
      const key = this.batchKeys.get(batch)
      if (key === undefined) return
      // Used again: a running batch is never the one forgotten.
      this.remember(batch, key)
      this.lastRow = { id: Buffer.from(batch, 'latin1'), batch, key }
      this.add(key, len)
      return
    }
    const k = line.indexOf(KEY)
    if (k < 0) return
    const end = line.indexOf(QUOTE, k + KEY.length)
    if (end < 0) return
    let key = line.toString('utf8', k + KEY.length, end)
    if (key.includes('\\')) {
      // A name with escapes: parsed whole.
      try { key = (JSON.parse(line.toString('utf8')) as { key: string }).key } catch { return }
      if (typeof key !== 'string') return
    }
    // An attribution's own batch id is its last field (a client's parameter named batch sits
    // inside `query`); other entries end with their status, a number.
    if (line[line.length - 2] === QUOTE) {
      const f = line.lastIndexOf(BATCH_FIELD)
      if (f >= 0 && line.indexOf(QUOTE, f + BATCH_FIELD.length) === line.length - 2) this.remember(line.toString('latin1', f + BATCH_FIELD.length, line.length - 2), key)
    }
    this.add(key, len)
  }
}
