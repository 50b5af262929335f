import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { KeaEvent } from '../../parse/event.js'
import { LineSplitter } from '../../parse/lines.js'
import { FINGERPRINT_BYTES, identityFromHead, RecordParser } from '../../parse/parser.js'
import { compilePattern, type LineParser } from '../../parse/pattern/compile.js'
import { resolvePattern } from '../../parse/patterns.js'
import { systemTimeZone } from '../../parse/time/zone.js'
import { CheckpointFile } from '../../pipeline/checkpoint.js'
import { emptyCounters, type Emit, type Log, type Source, type SourceCounters } from '../../pipeline/types.js'
import { FILE_BATCH_EVENTS, fileSourceConfigSchema, type FileSourceConfig } from './config.js'
import { validateConfig } from '../../config/validate.js'
import { LOG_CODES } from '../../errors.js'

const READ_BYTES = 64 * 1024
/**
 * The read loop lets the event loop run after this many bytes read: text that makes few events
 * (a run of NULs after a crash: its lines are cut at maxLineBytes) was read without an await,
 * 300 MB holding the process ~750 ms. 1 MiB is ~2.5 ms of such reading, ~5,000 Kea lines.
 */
const YIELD_BYTES = 1024 * 1024
/** A file whose reading failed (EIO) is opened again after this long. */
const READ_RETRY_MS = 1000

/** Checkpoint of one file, keyed by its fingerprint (the hash of its first line). */
interface FileCheckpoint { offset: number, path: string, updated: string }
type Checkpoints = Record<string, FileCheckpoint>

/** One open file being read; follows it through renames (the descriptor stays valid). */
class Reader {
  pos: number
  path: string
  readonly fingerprint: string
  readonly fd: number
  readonly ino: number
  readonly splitter: LineSplitter
  readonly parser: RecordParser
  lastGrowth = Date.now()
  /** Highest offset acknowledged by the store: everything before it is stored. */
  acked: number

  constructor (fd: number, ino: number, path: string, fingerprint: string, start: number, parser: RecordParser, maxLineBytes: number) {
    this.fd = fd
    this.ino = ino
    this.path = path
    this.fingerprint = fingerprint
    this.pos = start
    this.acked = start
    this.splitter = new LineSplitter({ maxLineBytes, startOffset: start })
    this.parser = parser
  }

  /** Where a restart may resume without losing anything handed out so far: not past an open record or a partial line. */
  safeOffset (): number {
    return Math.min(this.parser.pendingOffset ?? Number.POSITIVE_INFINITY, this.splitter.position)
  }
}

/**
 * Follows Kea's log files: rename rotation (x.log → x.log.1 …: the renamed file is read to its
 * end through its open descriptor while the new x.log is picked up), files deleted while being
 * read, partial last lines (emitted after `idleFlushMs`), multi-line records, and restarts.
 *
 * A file is identified by the hash of its first line, not its name or inode: after a rename
 * it keeps its checkpoint and its event ids, so nothing is read twice into the store (and if it
 * is, event ids make the store ignore it).
 */
export class FileSource implements Source {
  readonly name: string
  /** Read again from its checkpoint after a restart: batches not stored at shutdown are not lost. */
  readonly replayable = true
  readonly counters: SourceCounters = emptyCounters()
  private readonly cfg: ReturnType<typeof fileSourceConfigSchema.parse>
  private readonly compiled: LineParser
  private readonly pattern: string
  private readonly timeZone: string
  private readonly host: string
  private readonly readers = new Map<string, Reader>()
  private readonly byInode = new Map<string, Reader>()
  private readonly checkpoints: Checkpoints
  private readonly checkpointFile: CheckpointFile<Checkpoints>
  private readonly reported = new Set<string>()
  /** Paths whose reading failed: not opened again before this time (ms). */
  private readonly failedUntil = new Map<string, number>()
  /** Paths whose reading failed since the start (as `reported`: a few, each logged once). */
  private readonly readFailed = new Set<string>()
  private dirty = false
  private lastSave = 0
  private firstScan = true

  constructor (config: FileSourceConfig, stateDir: string, private readonly log: Log) {
    this.cfg = validateConfig(fileSourceConfigSchema, config, `sources.${(config as { name?: string }).name ?? '?'}`)
    this.name = this.cfg.name
    this.pattern = resolvePattern(this.cfg.pattern)
    this.timeZone = this.cfg.timeZone ?? systemTimeZone()
    this.host = this.cfg.host ?? hostname()
    this.compiled = compilePattern(this.pattern, { timeZone: this.timeZone })
    this.checkpointFile = new CheckpointFile<Checkpoints>(join(stateDir, `file-${this.name}.json`))
    this.checkpoints = validCheckpoints(this.checkpointFile.load() ?? {}, (key) => {
      this.log.error(LOG_CODES.checkpointCorrupt, 'A checkpoint entry is malformed; its file is read again from the beginning (event ids prevent duplicates).',
        { source: this.name, path: this.checkpointFile.path, fingerprint: key })
    })
    // A checkpoint that cannot be read at all is a setup fault start() reports; bad content is re-read.
    if (this.checkpointFile.corrupt !== undefined && this.checkpointFile.unreadable === undefined) {
      this.log.error(LOG_CODES.checkpointCorrupt, 'Checkpoint file is unreadable; re-reading all files (event ids prevent duplicates).',
        { source: this.name, path: this.checkpointFile.path, reason: this.checkpointFile.corrupt })
    }
  }

  /**
   * Fails (one line: why) when checkpoints could not be kept: a source that would re-read
   * everything after each restart, or never advance, must not start. Missing log files are
   * not a failure: Kea may not have written them yet.
   */
  async start (): Promise<void> {
    this.checkpointFile.check()
  }

  async run (emit: Emit, signal: AbortSignal): Promise<void> {
    await this.start()
    while (!signal.aborted) {
      this.scan()
      let progressed = false
      for (const reader of [...this.readers.values()]) {
        if (signal.aborted) break
        progressed = await this.readSome(reader, emit, signal) || progressed
      }
      this.maybeSave(false)
      if (!progressed) await sleep(this.cfg.pollIntervalMs, undefined, { signal }).catch(() => {})
    }
  }

  checkpoint (): void {
    this.maybeSave(true)
  }

  /** Finds files to follow: new ones, renamed ones, replaced ones. */
  private scan (): void {
    const now = Date.now()
    for (const [path, until] of this.failedUntil) if (until <= now) this.failedUntil.delete(path)
    for (const path of this.matchingFiles()) {
      if (this.failedUntil.has(path)) continue
      let st
      try {
        st = statSync(path)
      } catch {
        continue
      }
      if (st.isDirectory()) { this.reportOnce(path, LOG_CODES.source, 'Path is a directory, not a log file; skipped.'); continue }
      // A FIFO would block the process in openSync until something writes to it (a socket or a
      // device is no log file either).
      if (!st.isFile()) { this.reportOnce(path, LOG_CODES.source, 'Path is not a regular file (a FIFO, socket or device); skipped.'); continue }
      const known = this.byInode.get(`${st.dev}:${st.ino}`)
      if (known !== undefined) { known.path = path; continue }
      this.open(path)
    }
    this.firstScan = false
  }

  private matchingFiles (): string[] {
    const out: string[] = []
    for (const glob of this.cfg.include) {
      const dir = dirname(glob)
      const re = wildcard(basename(glob))
      let names: string[]
      try {
        names = readdirSync(dir)
      } catch (err) {
        this.reportOnce(glob, LOG_CODES.source, `Cannot list ${dir}: ${(err as Error).message}`)
        continue
      }
      for (const n of names) {
        if (re.test(n) && !this.cfg.exclude.some((x) => wildcard(x).test(n))) out.push(join(dir, n))
      }
    }
    return out
  }

  private open (path: string): void {
    let fd: number
    try {
      // Non-blocking: the path may have become a FIFO since scan() looked (fstat below tells).
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    } catch (err) {
      this.reportOnce(path, LOG_CODES.source, `Cannot open: ${(err as Error).message}`)
      return
    }
    const st = fstatSync(fd)
    if (!st.isFile()) {
      closeSync(fd)
      this.reportOnce(path, LOG_CODES.source, 'Path is not a regular file (a FIFO, socket or device); skipped.')
      return
    }
    const head = Buffer.alloc(Math.min(FINGERPRINT_BYTES, st.size))
    let n: number
    try {
      n = head.length === 0 ? 0 : readSync(fd, head, 0, head.length, 0)
    } catch (err) {
      closeSync(fd)
      this.readFailedAt(path, err)
      return
    }
    const fingerprint = identityFromHead(head.subarray(0, n), this.host)
    if (fingerprint === undefined) {
      // Not even one complete line yet: its identity is not known. Look again next scan.
      closeSync(fd)
      return
    }
    if (this.readers.has(fingerprint)) {
      // Same content under another name with another inode (a copy): already being read.
      closeSync(fd)
      return
    }
    const cp = this.checkpoints[fingerprint]
    if (cp !== undefined && cp.offset > st.size) {
      // Shorter than what was stored of it: rewritten since (truncated in place while keatrail
      // was down). Read as a new file: records at offsets stored before have their old ids, and
      // a record there that differs is taken for the stored one (logged here, not repairable).
      this.log.error(LOG_CODES.sourceTruncated, 'File is shorter than its checkpoint; reading it from the beginning as a new file.', { source: this.name, path, checkpoint: cp.offset, size: st.size })
    }
    const start = cp !== undefined && cp.offset <= st.size ? cp.offset : cp === undefined && this.cfg.readFrom === 'end' && this.firstScan ? st.size : 0
    // rederivable: events are handed over as parsed, so the store may keep raw records only.
    const parser = new RecordParser({ pattern: this.pattern, compiled: this.compiled, timeZone: this.timeZone, sourceId: fingerprint, path, host: this.host, rederivable: true })
    const reader = new Reader(fd, st.ino, path, fingerprint, start, parser, this.cfg.maxLineBytes)
    this.readers.set(fingerprint, reader)
    this.byInode.set(`${st.dev}:${st.ino}`, reader)
    // Not again at each try (one a second) at a file whose reading failed.
    if (!this.readFailed.has(path)) this.log.info('Following file.', { source: this.name, path, fingerprint, offset: start })
  }

  /** Reads what is new in one file and hands it over in batches. Returns whether anything happened. */
  private async readSome (reader: Reader, emit: Emit, signal: AbortSignal): Promise<boolean> {
    let st
    try {
      st = fstatSync(reader.fd)
    } catch {
      this.close(reader)
      return false
    }
    let events: KeaEvent[] = []
    let eventBytes = 0
    const onEvent = (e: KeaEvent): void => {
      events.push(e)
      eventBytes += e.event.original.length
    }
    const hand = async (): Promise<void> => {
      if (events.length === 0) return
      const batch = events
      events = []
      eventBytes = 0
      const upTo = reader.safeOffset()
      await emit({ source: this.name, events: batch, ack: () => this.ack(reader, upTo) })
    }
    if (st.size < reader.pos) {
      // Truncated in place (copytruncate): the content is new; identity is re-read by the next
      // scan. What was read of the old content is handed over first (a last line, an open record).
      this.log.error(LOG_CODES.sourceTruncated, 'File shrank; treating it as a new file.', { source: this.name, path: reader.path })
      reader.splitter.flush((line) => reader.parser.push(line, onEvent))
      reader.parser.flush(onEvent)
      await hand()
      this.close(reader)
      return true
    }
    const buf = Buffer.allocUnsafe(READ_BYTES)
    let grew = false
    let sinceYield = 0
    // Stops at a signal: a large backlog must not delay shutdown until it is all read (and dropped).
    while (reader.pos < st.size && !signal.aborted) {
      let n: number
      try {
        n = readSync(reader.fd, buf, 0, Math.min(READ_BYTES, st.size - reader.pos), reader.pos)
      } catch (err) {
        // No progress is reported: a file failing at once on every try must not keep the loop
        // from sleeping (synchronous reads and microtasks only: it held the event loop for good).
        await hand()
        this.close(reader)
        this.readFailedAt(reader.path, err)
        return false
      }
      if (n <= 0) break
      reader.pos += n
      grew = true
      this.counters.received += n
      reader.splitter.push(buf.subarray(0, n), (line) => reader.parser.push(line, onEvent))
      if (events.length >= (this.cfg.batchEvents ?? FILE_BATCH_EVENTS) || eventBytes >= this.cfg.batchBytes) await hand()
      if ((sinceYield += n) >= YIELD_BYTES) { sinceYield = 0; await new Promise((resolve) => setImmediate(resolve)) }
    }
    if (grew) reader.lastGrowth = Date.now()
    else if (Date.now() - reader.lastGrowth >= this.cfg.idleFlushMs && (reader.splitter.pendingBytes > 0 || reader.parser.pendingOffset !== undefined)) {
      // Quiet for a while: Kea writes whole records, so what is held is complete.
      reader.splitter.flush((line) => reader.parser.push(line, onEvent))
      reader.parser.flush(onEvent)
    }
    await hand()
    if (!grew && this.isGone(reader) && reader.safeOffset() >= reader.pos) {
      this.close(reader)
      return true
    }
    return grew
  }

  /**
   * Reading `path` failed (EIO and the like): reported once, counted, and the file opened again
   * from its checkpoint after READ_RETRY_MS; the source goes on with the others.
   */
  private readFailedAt (path: string, err: unknown): void {
    this.reportOnce(path, LOG_CODES.source, `Cannot read: ${(err as Error).message}`)
    this.failedUntil.set(path, Date.now() + READ_RETRY_MS)
    this.readFailed.add(path)
  }

  private ack (reader: Reader, upTo: number): void {
    if (upTo <= reader.acked) return
    reader.acked = upTo
    this.checkpoints[reader.fingerprint] = { offset: upTo, path: reader.path, updated: new Date().toISOString() }
    this.dirty = true
    // Also from here, not only from the read loop: while the store is down the loop waits in
    // emit() and would not save what was acknowledged before (a crash then re-reads all of it).
    this.maybeSave(false)
  }

  /** The file was deleted, or its name now belongs to another file: after EOF it can be closed. */
  private isGone (reader: Reader): boolean {
    try {
      return statSync(reader.path).ino !== reader.ino
    } catch {
      return true
    }
  }

  private close (reader: Reader): void {
    try { closeSync(reader.fd) } catch { /* already closed */ }
    this.readers.delete(reader.fingerprint)
    for (const [k, v] of this.byInode) if (v === reader) this.byInode.delete(k)
  }

  private maybeSave (force: boolean): void {
    if (!this.dirty) return
    if (!force && Date.now() - this.lastSave < 1000) return
    // Keep checkpoints of files still present or recently acknowledged; forget ones long gone.
    const keys = Object.keys(this.checkpoints)
    if (keys.length > 1000) {
      keys.sort((a, b) => (this.checkpoints[a]?.updated ?? '').localeCompare(this.checkpoints[b]?.updated ?? ''))
      for (const k of keys.slice(0, keys.length - 1000)) if (!this.readers.has(k)) delete this.checkpoints[k]
    }
    this.lastSave = Date.now()
    if (this.checkpointFile.trySave(this.checkpoints, this.log, this.name)) this.dirty = false
  }

  private reportOnce (key: string, code: string, msg: string): void {
    if (this.reported.has(key + msg)) return
    this.reported.add(key + msg)
    this.counters.errors++
    this.log.error(code, msg, { source: this.name, path: key })
  }
}

/** The checkpoint entries that have the shape a file's checkpoint has (`bad` is told of the others). */
function validCheckpoints (loaded: Checkpoints, bad: (key: string) => void): Checkpoints {
  const out: Checkpoints = {}
  for (const [key, cp] of Object.entries(loaded as Record<string, unknown>)) {
    const c = cp as Partial<FileCheckpoint> | null
    if (c !== null && typeof c === 'object' && typeof c.offset === 'number' && Number.isSafeInteger(c.offset) && c.offset >= 0 && typeof c.path === 'string') {
      out[key] = { offset: c.offset, path: c.path, updated: typeof c.updated === 'string' ? c.updated : '' }
    } else bad(key)
  }
  return out
}

/** The file source's matching rule: `*` within a file name (also what run's start-up warning checks). */
export function wildcard (glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
}
