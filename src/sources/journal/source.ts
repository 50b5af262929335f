import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import type { KeaEvent } from '../../parse/event.js'
import { LineSplitter, type InputLine } from '../../parse/lines.js'
import { RecordParser, type ParseStats } from '../../parse/parser.js'
import { compilePattern } from '../../parse/pattern/compile.js'
import { resolvePattern } from '../../parse/patterns.js'
import { CheckpointFile } from '../../pipeline/checkpoint.js'
import { emptyCounters, type Emit, type Log, type Source, type SourceCounters } from '../../pipeline/types.js'
import { validateConfig } from '../../config/validate.js'
import { JOURNAL_LOG_CODES, LOG_CODES } from '../../errors.js'
import { Backoff } from '../../backoff.js'
import { fileSourceConfigSchema } from '../file/config.js'
import { messageBytes, readJsonPrefix } from './entry.js'

export const journalSourceConfigSchema = z.object({
  type: z.literal('journal').describe('Read the systemd journal through journalctl (Kea under systemd logging to stdout)'),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/).describe('Source name: in counters, logs and the checkpoint file name'),
  directory: z.string().optional().describe('Read journal files from this directory (journalctl --directory); default: the system journal'),
  file: z.string().optional().describe('Read this journal file (journalctl --file)'),
  units: z.array(z.string()).default([]).describe('Only these systemd units (journalctl -u), e.g. kea-dhcp4-server.service'),
  identifiers: z.array(z.string()).default([]).describe('Only these SYSLOG_IDENTIFIERs (journalctl -t), e.g. kea-dhcp4'),
  pattern: z.string().default('debian-systemd').describe('Pattern of MESSAGE: Debian\'s Kea logs "%-5p %m\\n" to stdout under systemd'),
  readFrom: z.enum(['beginning', 'end']).default('beginning').describe('Without a saved cursor: the whole journal, or only new entries'),
  journalctl: z.string().default('journalctl').describe('The journalctl program'),
  batchEvents: z.number().int().min(1).default(500).describe('Events per batch'),
  flushMs: z.number().int().min(1).default(200).describe('A partial batch is handed over after this long'),
  // The file source's field, default and all: a Kea line is as long whichever way it comes.
  maxLineBytes: fileSourceConfigSchema.shape.maxLineBytes
    .describe('A longer MESSAGE is cut, marked and counted; journalctl\'s JSON lines are read up to 4 times this plus 64 KiB'),
  restartMs: z.object({
    initial: z.number().int().min(10).default(500).describe('First wait before restarting journalctl after it exited'),
    max: z.number().int().min(10).default(30_000).describe('Longest wait (exponential, capped)')
  }).strict().prefault({}).describe('Waits before restarting journalctl after it exited')
}).strict()

export type JournalSourceConfig = z.input<typeof journalSourceConfigSchema>

/** journalctl's arguments choosing what a source reads: its journal and its units or identifiers. */
export function journalFilter (cfg: Pick<z.output<typeof journalSourceConfigSchema>, 'directory' | 'file' | 'units' | 'identifiers'>): string[] {
  const a: string[] = []
  if (cfg.directory !== undefined) a.push(`--directory=${cfg.directory}`)
  if (cfg.file !== undefined) a.push(`--file=${cfg.file}`)
  for (const u of cfg.units) a.push(`--unit=${u}`)
  for (const t of cfg.identifiers) a.push(`--identifier=${t}`)
  return a
}

/** The fields the source asks journalctl for (--output-fields; it adds the cursor and timestamps itself). */
const FIELDS = ['MESSAGE', '_HOSTNAME', '_PID', 'SYSLOG_IDENTIFIER']

/**
 * What a JSON line may take beyond maxLineBytes: MESSAGE that is not printable UTF-8 comes as an
 * array of byte numbers, up to 4 characters a byte ("255,"); printable text takes at most 2 a
 * byte (escapes). The other fields are the few small ones FIELDS names, the cursor and timestamps.
 */
const JSON_BYTES_PER_BYTE = 4
const JSON_OTHER_FIELDS_BYTES = 64 * 1024

/** The shape of a line of `journalctl --output=json`; values are checked where they are used. */
interface JournalEntry {
  __CURSOR?: unknown
  __REALTIME_TIMESTAMP?: unknown
  _HOSTNAME?: unknown
  _PID?: unknown
  SYSLOG_IDENTIFIER?: unknown
  MESSAGE?: unknown
}

function text (v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

/**
 * Follows the systemd journal the way Vector and Filebeat do: `journalctl --follow
 * --output=json --after-cursor=<saved>`. The cursor is saved only for entries the store has
 * acknowledged. journalctl is restarted with backoff when it exits (or is missing), without
 * stopping other sources. Event ids derive from the cursor, so a re-read is never stored twice.
 * What one entry costs is bounded: journalctl's lines are read up to a bound (the start of a
 * longer one is kept) and MESSAGE is cut at maxLineBytes, cut events marked and counted.
 */
export class JournalSource implements Source {
  readonly name: string
  /** Followed again from its cursor after a restart: entries not stored at shutdown are not lost. */
  readonly replayable = true
  readonly counters: SourceCounters = emptyCounters()
  private readonly cfg: ReturnType<typeof journalSourceConfigSchema.parse>
  private readonly parser: RecordParser
  private readonly checkpointFile: CheckpointFile<{ cursor: string }>
  private cursor: string | undefined
  private ackedCursor: string | undefined
  private savedCursor: string | undefined
  private readonly idPrefix: string
  /** What names the entry last read (its cursor): a following entry whose cursor was cut off is named after it. */
  private lastBasis: string | undefined
  /** journalctl refused the saved cursor: read from the oldest entry, whatever readFrom says. */
  private fromOldest = false
  /** journalctl knows --output-fields (systemd ≥ 236; an unknown version is taken for a newer one). */
  private outputFields = true

  constructor (config: JournalSourceConfig, stateDir: string, private readonly log: Log) {
    this.cfg = validateConfig(journalSourceConfigSchema, config, `sources.${(config as { name?: string }).name ?? '?'}`)
    this.name = this.cfg.name
    const pattern = resolvePattern(this.cfg.pattern)
    this.idPrefix = createHash('sha256').update(`journal\0${this.cfg.directory ?? ''}\0${this.cfg.file ?? ''}`).digest('hex').slice(0, 12)
    this.parser = new RecordParser({ pattern, compiled: compilePattern(pattern), sourceId: this.idPrefix })
    this.checkpointFile = new CheckpointFile(join(stateDir, `journal-${this.name}.json`))
    const saved = this.checkpointFile.load()
    // A cursor file that cannot be read at all is a setup fault start() reports; bad content is re-read.
    if (this.checkpointFile.corrupt !== undefined && this.checkpointFile.unreadable === undefined) {
      this.log.error(LOG_CODES.checkpointCorrupt, 'Journal cursor file is unreadable; reading from the start (event ids prevent duplicates).', { source: this.name })
    }
    this.cursor = typeof saved?.cursor === 'string' ? saved.cursor : undefined
    this.ackedCursor = this.cursor
    this.savedCursor = this.cursor
  }

  /** Its parser's counters: lines, records, and lines cut (truncated) or not UTF-8, as a file source's parsers count them. */
  get parseStats (): Readonly<ParseStats> {
    return this.parser.stats
  }

  private starting: Promise<void> | undefined

  /**
   * Fails (one line: why) when this source could never work: its cursor cannot be kept, the
   * journal directory or file does not exist, or journalctl cannot be run. Once running,
   * journalctl exiting is retried with backoff instead (a journal being rotated, a restart).
   */
  async start (): Promise<void> {
    this.starting ??= this.check().catch((err: unknown) => {
      this.starting = undefined
      throw err
    })
    await this.starting
  }

  private async check (): Promise<void> {
    this.checkpointFile.check()
    for (const [what, path] of [['journal directory', this.cfg.directory], ['journal file', this.cfg.file]] as const) {
      if (path === undefined) continue
      try {
        statSync(path)
      } catch (err) {
        throw new Error(`${what} ${path}: ${(err as Error).message}`)
      }
    }
    await new Promise<void>((resolve, reject) => {
      // Bounded: a journalctl that hangs must not hold start-up (and a signal) forever.
      execFile(this.cfg.journalctl, ['--version'], { timeout: 10_000 }, (err, stdout) => {
        if (err !== null) { reject(new Error(`cannot run ${this.cfg.journalctl}: ${err.message.split('\n')[0] ?? ''}`)); return }
        // "systemd 252 (252.39-1~deb12u1)": --output-fields came with systemd 236 (2017); an
        // older journalctl refuses the option and would be restarted for ever without reading.
        const version = /^systemd (\d+)/m.exec(String(stdout))?.[1]
        this.outputFields = version === undefined || Number(version) >= 236
        resolve()
      })
    })
  }

  async run (emit: Emit, signal: AbortSignal): Promise<void> {
    await this.start()
    const backoff = new Backoff({ initialMs: this.cfg.restartMs.initial, maxMs: this.cfg.restartMs.max })
    while (!signal.aborted) {
      const started = Date.now()
      let failure: unknown
      let refused: string | undefined
      try {
        refused = await this.follow(emit, signal)
      } catch (err) {
        failure = err
      }
      if (signal.aborted) break
      if (refused !== undefined) {
        // A cursor journalctl cannot seek to (damaged, or of another journal) would be refused
        // at every restart: the source would never read again. What is still in the journal is
        // read from its oldest entry instead; event ids make the store skip what it has. Vacuumed
        // entries are gone either way, and journalctl seeks past a stale cursor itself.
        this.counters.errors++
        this.log.error(JOURNAL_LOG_CODES.cursorRefused, 'journalctl refused the saved cursor; reading the journal again from its oldest entry (event ids prevent duplicates).',
          { source: this.name, cursor: this.cursor, error: refused })
        this.cursor = undefined
        this.fromOldest = true
        continue
      }
      // A journalctl that ran a while was healthy: its exit starts the backoff afresh.
      if (Date.now() - started > 60_000) backoff.reset()
      const wait = backoff.next()
      if (failure !== undefined) {
        this.counters.errors++
        this.log.error(LOG_CODES.source, 'journalctl failed; restarting.', { source: this.name, error: failure, retryInMs: wait })
      }
      await sleep(wait, undefined, { signal }).catch(() => {})
    }
    this.checkpoint()
  }

  checkpoint (): void {
    if (this.ackedCursor !== undefined && this.ackedCursor !== this.savedCursor) {
      if (this.checkpointFile.trySave({ cursor: this.ackedCursor }, this.log, this.name)) this.savedCursor = this.ackedCursor
    }
  }

  private args (): string[] {
    const a = ['--follow', '--output=json', '--all', '--no-pager', '--quiet', ...journalFilter(this.cfg)]
    // --follow implies --lines=10, even after a cursor: ask for everything explicitly.
    if (this.cursor !== undefined) a.push(`--after-cursor=${this.cursor}`, '--lines=all')
    else a.push(this.cfg.readFrom === 'end' && !this.fromOldest ? '--lines=0' : '--lines=all')
    // Only the fields the events use: the others (journald adds some twenty) cost parsing, and
    // could make a line long enough to be cut.
    if (this.outputFields) a.push(`--output-fields=${FIELDS.join(',')}`)
    return a
  }

  /** journalctl's lines are read up to this many bytes: a MESSAGE of maxLineBytes fits, whatever its shape. */
  private get jsonLineBytes (): number {
    return JSON_BYTES_PER_BYTE * this.cfg.maxLineBytes + JSON_OTHER_FIELDS_BYTES
  }

  /**
   * One run of journalctl; resolves when the source stops, or to journalctl's complaint when it
   * refused the cursor it was given. Throws when journalctl exits otherwise.
   */
  private async follow (emit: Emit, signal: AbortSignal): Promise<string | undefined> {
    const after = this.cursor
    this.lastBasis = after
    const child = spawn(this.cfg.journalctl, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 4000) stderr += d.toString() })
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code) => resolve(code))
    })
    // Handled here at once: a spawn error (journalctl missing) must not become unhandled.
    exited.catch(() => {})
    const onAbort = (): void => { child.kill('SIGTERM') }
    signal.addEventListener('abort', onAbort, { once: true })
    let batch: KeaEvent[] = []
    let batchCursor: string | undefined
    // One hand-over at a time, and the read loop waits for it: the flush timer's batches, each
    // left waiting in emit while the pipeline was full, let the source read the whole journal
    // into memory (and journalctl never waited); one at a time also keeps the acks in order.
    let inFlight: Promise<void> | undefined
    const hand = async (): Promise<void> => {
      while (inFlight !== undefined) await inFlight
      if (batch.length === 0) return
      const events = batch
      const cursor = batchCursor
      batch = []
      const handed = emit({ source: this.name, events, ack: () => { if (cursor !== undefined) { this.ackedCursor = cursor; this.checkpoint() } } })
      inFlight = handed.then(() => {}, () => {}).finally(() => { inFlight = undefined })
      await handed
    }
    const timer = setInterval(() => { if (inFlight === undefined) void hand().catch(() => {}) }, this.cfg.flushMs)
    try {
      // Not readline: it holds a whole line however long. The splitter keeps the start of a line
      // up to the bound and skips the rest as it comes (and counts it).
      const splitter = new LineSplitter({ maxLineBytes: this.jsonLineBytes })
      const lines: InputLine[] = []
      // Read as the loop asks: while it waits for the pipeline, journalctl waits on a full pipe.
      for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
        while (inFlight !== undefined) await inFlight
        splitter.push(chunk, (line) => { lines.push(line) })
        for (const line of lines) {
          const entry = this.entryOf(line)
          if (entry === undefined) continue
          const cursor = text(entry.__CURSOR)
          // What names the entry: its cursor or, cut off a long line, the entry before it and
          // "next", the same on every read (a restart resumes at the entry before it).
          const basis = cursor ?? `${this.lastBasis ?? ''}\0next`
          this.lastBasis = basis
          for (const e of this.toEvents(entry, basis, line.truncated === true)) batch.push(e)
          if (cursor !== undefined) { this.cursor = cursor; batchCursor = cursor }
          if (batch.length >= this.cfg.batchEvents) await hand()
        }
        lines.length = 0
      }
      // A last line without newline is one journalctl did not finish (it ends each entry with
      // one): its cursor was not taken, so the next run reads that entry again, whole.
      await hand()
      const code = await exited
      if (signal.aborted) return undefined
      if (after !== undefined && code !== 0 && stderr.includes('Failed to seek to cursor')) return stderr.trim()
      throw new Error(`journalctl exited with ${code ?? 'a signal'}${stderr === '' ? '' : `: ${stderr.trim()}`}`)
    } finally {
      clearInterval(timer)
      signal.removeEventListener('abort', onAbort)
      if (child.exitCode === null) child.kill('SIGTERM')
    }
  }

  /** The entry a line of journalctl holds; undefined (logged, counted) when it holds none. */
  private entryOf (line: InputLine): JournalEntry | undefined {
    // Bytes, as every source counts what it received (the line and its newline), also those cut off.
    this.counters.received += line.bytes + 1
    if (line.truncated !== true) {
      try {
        const entry = JSON.parse(line.text) as unknown
        if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) return entry
        throw new Error('not an object')
      } catch (err) {
        this.counters.errors++
        this.log.error(LOG_CODES.source, 'journalctl wrote a line that is not a JSON entry; skipped.', { source: this.name, error: err, line: line.text.slice(0, 200) })
        return undefined
      }
    }
    // Longer than the bound: what of its fields is whole. MESSAGE comes first or its start is
    // there (the other fields are small); fields printed after it, the cursor too, may be lost.
    let fields: JournalEntry
    try {
      fields = readJsonPrefix(line.text).fields
    } catch {
      fields = {}
    }
    if (fields.MESSAGE === undefined) {
      this.counters.errors++
      this.log.error(LOG_CODES.source, 'journalctl wrote an entry longer than the source reads, and its MESSAGE is not in what was read; skipped.',
        { source: this.name, bytes: line.bytes, cursor: text(fields.__CURSOR), line: line.text.slice(0, 200) })
    }
    return fields
  }

  /** The events of an entry's MESSAGE; `cut`: its JSON line was longer than the bound. */
  private toEvents (entry: JournalEntry, basis: string, cut: boolean): KeaEvent[] {
    const whole = messageBytes(entry.MESSAGE)
    if (whole === undefined) return []
    const realtime = Number(text(entry.__REALTIME_TIMESTAMP))
    const time = Number.isFinite(realtime) ? Math.floor(realtime / 1000) : undefined
    const host = text(entry._HOSTNAME)
    const pidText = text(entry._PID)
    const pid = pidText !== undefined && /^\d{1,10}$/.test(pidText) ? Number(pidText) : undefined
    const identifier = text(entry.SYSLOG_IDENTIFIER)
    // The cursor names the entry for good: the id survives restarts and re-reads. An entry makes
    // several events (two Kea headers, a record over the size bounds): the first keeps the id an
    // entry always had (stored ones still match a replay), the k-th gets "-k" (k >= 1).
    const id = `${this.idPrefix}-${createHash('sha1').update(basis).digest('hex').slice(0, 20)}`
    let k = 0
    const out: KeaEvent[] = []
    const onEvent = (e: KeaEvent): void => {
      e.event.id = k === 0 ? id : `${id}-${k}`
      k++
      if (pid !== undefined && e.process?.pid === undefined) e.process = { ...e.process, pid }
      if (e.process !== undefined && e.process.name === undefined && identifier !== undefined) e.process.name = identifier
      out.push(e)
    }
    // Cut at maxLineBytes, as the file source cuts a line: what is kept is marked and counted.
    const max = this.cfg.maxLineBytes
    const over = whole.length > max ? whole.length - max : 0
    const buf = over > 0 ? whole.subarray(0, max) : whole
    // Split the bytes, not the text, so each line of a non-UTF-8 MESSAGE keeps its own raw bytes.
    const parts: Buffer[] = []
    for (let start = 0; start <= buf.length;) {
      const nl = buf.indexOf(10, start)
      const end = nl < 0 ? buf.length : nl
      if (nl >= 0 || end > start) parts.push(buf.subarray(start, end))
      if (nl < 0) break
      start = nl + 1
    }
    if (parts.length > 1 && parts[parts.length - 1]?.length === 0) parts.pop()
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as Buffer
      const l = part.toString('utf8')
      const line: InputLine = { text: l, offset: 0, bytes: part.length }
      if (time !== undefined) line.time = time
      if (host !== undefined) line.host = host
      // Only a decoding that replaced something can differ from the bytes.
      if (l.includes('\uFFFD') && !Buffer.from(l, 'utf8').equals(part)) line.raw = Buffer.from(part)
      if (i === parts.length - 1 && (over > 0 || cut)) {
        line.truncated = true
        line.bytes += over
      }
      this.parser.push(line, onEvent)
    }
    this.parser.flush(onEvent)
    return out
  }
}
