import { fstatSync, readSync } from 'node:fs'

/** Bytes read per step when counting lines appended to the audit log. */
const CHUNK = 1 << 20
/** Batch ids remembered (a row line names its batch, not its key); the oldest forgotten first. */
const BATCHES = 10_000
/** Bytes before the counted end compared at each look: a file cut and written again past it since is told apart by them. */
const TAIL = 64

/**
 * Each API key's bytes in the audit log, counted from the file itself: every line appended since
 * the last look (this process's, or another's: `keatrail serve` beside `keatrail run` appends to
 * the same file) is read back and charged to its key (a batch attribution's rows to their batch
 * entry's key). One key repeating batch attributions (~10 MB each) otherwise filled the whole
 * api.auditLogMaxBytes and every other key's reads were refused until an operator rotated it.
 *
 * What the file held when this process first looked is charged to nobody (reading back up to
 * 1 GiB at start would delay it): after a restart each key has its share of what is left. A file
 * replaced (logrotate's rename and create, then SIGHUP) or cut (copytruncate) is counted again
 * from its start.
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

  /** Bytes of `key`'s lines counted so far. */
  used (key: string): number {
    return this.bytes.get(key) ?? 0
  }

  /** Counts what was appended to the file open as `fd` (readable) since the last call; its size. */
  sync (fd: number): number {
    const st = fstatSync(fd)
    if (this.file === undefined) {
      this.file = { dev: st.dev, ino: st.ino }
      this.upTo = st.size
      this.tail = this.read(fd, Math.max(0, st.size - TAIL), Math.min(TAIL, st.size))
      return st.size
    }
    if (st.dev !== this.file.dev || st.ino !== this.file.ino || st.size < this.upTo || !this.tailHolds(fd)) {
      this.file = { dev: st.dev, ino: st.ino }
      this.bytes.clear()
      this.batchKeys.clear()
      this.upTo = 0
      this.tail = Buffer.alloc(0)
      this.skipping = false
    }
    if (st.size <= this.upTo) return st.size
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, st.size - this.upTo))
    while (this.upTo < st.size) {
      const asked = Math.min(buf.length, st.size - this.upTo)
      const n = readSync(fd, buf, 0, asked, this.upTo)
      if (n <= 0) break
      // Fewer bytes than asked: the file was cut meanwhile (the next call starts it again).
      const toEnd = n < asked || this.upTo + n >= st.size
      const got = buf.subarray(0, n)
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
    this.tail = this.read(fd, Math.max(0, this.upTo - TAIL), Math.min(TAIL, this.upTo))
    return st.size
  }

  /** The file still has the bytes last read before upTo (a copytruncate followed by more lines than were counted has not). */
  private tailHolds (fd: number): boolean {
    return this.read(fd, this.upTo - this.tail.length, this.tail.length).equals(this.tail)
  }

  private read (fd: number, from: number, length: number): Buffer {
    const b = Buffer.alloc(length)
    const n = length === 0 ? 0 : readSync(fd, b, 0, length, from)
    return b.subarray(0, n)
  }

  private charge (line: Buffer): void {
    let e: { key?: unknown, batch?: unknown }
    try { e = JSON.parse(line.toString('utf8')) as typeof e } catch { return }
    if (typeof e !== 'object' || e === null) return
    let key: string | undefined
    if (typeof e.key === 'string') {
      key = e.key
      if (typeof e.batch === 'string') {
        this.batchKeys.set(e.batch, key)
        if (this.batchKeys.size > BATCHES) this.batchKeys.delete(this.batchKeys.keys().next().value as string)
      }
    } else if (typeof e.batch === 'string') {
      key = this.batchKeys.get(e.batch)
    }
    if (key !== undefined) this.bytes.set(key, this.used(key) + line.length + 1)
  }
}
