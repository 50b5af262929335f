import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import type { KeaEvent } from '../../parse/event.js'
import type { InputLine } from '../../parse/lines.js'
import { RecordParser } from '../../parse/parser.js'
import { compilePattern } from '../../parse/pattern/compile.js'
import { resolvePattern } from '../../parse/patterns.js'
import { CheckpointFile } from '../../pipeline/checkpoint.js'
import { emptyCounters, type Emit, type Log, type Source, type SourceCounters } from '../../pipeline/types.js'
import { validateConfig } from '../../config/validate.js'
import { LOG_CODES } from '../../errors.js'
import { Backoff } from '../../backoff.js'

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

interface JournalEntry {
  __CURSOR?: string
  __REALTIME_TIMESTAMP?: string
  _HOSTNAME?: string
  _PID?: string
  SYSLOG_IDENTIFIER?: string
  MESSAGE?: string | number[] | null
}

/**
 * Follows the systemd journal the way Vector and Filebeat do: `journalctl --follow
 * --output=json --after-cursor=<saved>`. The cursor is saved only for entries the store has
 * acknowledged. journalctl is restarted with backoff when it exits (or is missing), without
 * stopping other sources. Event ids derive from the cursor, so a re-read is never stored twice.
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
      execFile(this.cfg.journalctl, ['--version'], { timeout: 10_000 }, (err) => {
        if (err === null) resolve()
        else reject(new Error(`cannot run ${this.cfg.journalctl}: ${err.message.split('\n')[0] ?? ''}`))
      })
    })
  }

  async run (emit: Emit, signal: AbortSignal): Promise<void> {
    await this.start()
    const backoff = new Backoff({ initialMs: this.cfg.restartMs.initial, maxMs: this.cfg.restartMs.max })
    while (!signal.aborted) {
      const started = Date.now()
      let failure: unknown
      try {
        await this.follow(emit, signal)
      } catch (err) {
        failure = err
      }
      if (signal.aborted) break
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
    else a.push(this.cfg.readFrom === 'end' ? '--lines=0' : '--lines=all')
    return a
  }

  /** One run of journalctl; resolves when it exits or the source stops. */
  private async follow (emit: Emit, signal: AbortSignal): Promise<void> {
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
    const hand = async (): Promise<void> => {
      if (batch.length === 0) return
      const events = batch
      const cursor = batchCursor
      batch = []
      child.stdout?.pause()
      await emit({ source: this.name, events, ack: () => { if (cursor !== undefined) { this.ackedCursor = cursor; this.checkpoint() } } })
      child.stdout?.resume()
    }
    const timer = setInterval(() => { void hand() }, this.cfg.flushMs)
    try {
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity })
      for await (const line of lines) {
        let entry: JournalEntry
        try {
          entry = JSON.parse(line) as JournalEntry
        } catch (err) {
          this.counters.errors++
          this.log.error(LOG_CODES.source, 'journalctl wrote a line that is not JSON; skipped.', { source: this.name, error: err, line: line.slice(0, 200) })
          continue
        }
        // Bytes, as every source counts what it received (the line and its newline).
        this.counters.received += Buffer.byteLength(line) + 1
        for (const e of this.toEvents(entry)) batch.push(e)
        if (entry.__CURSOR !== undefined) { this.cursor = entry.__CURSOR; batchCursor = entry.__CURSOR }
        if (batch.length >= this.cfg.batchEvents) await hand()
      }
      await hand()
      const code = await exited
      if (!signal.aborted) throw new Error(`journalctl exited with ${code ?? 'a signal'}${stderr === '' ? '' : `: ${stderr.trim()}`}`)
    } finally {
      clearInterval(timer)
      signal.removeEventListener('abort', onAbort)
      if (child.exitCode === null) child.kill('SIGTERM')
    }
  }

  private toEvents (entry: JournalEntry): KeaEvent[] {
    const raw = entry.MESSAGE
    if (raw === undefined || raw === null) return []
    const bytes = typeof raw === 'string' ? undefined : Buffer.from(raw)
    const text = bytes === undefined ? raw as string : ''
    const time = entry.__REALTIME_TIMESTAMP === undefined ? undefined : Math.floor(Number(entry.__REALTIME_TIMESTAMP) / 1000)
    const out: KeaEvent[] = []
    const onEvent = (e: KeaEvent): void => {
      // The cursor names the entry for good: the id survives restarts and re-reads.
      if (entry.__CURSOR !== undefined) e.event.id = `${this.idPrefix}-${createHash('sha1').update(entry.__CURSOR).digest('hex').slice(0, 20)}`
      if (entry._PID !== undefined && e.process?.pid === undefined) e.process = { ...e.process, pid: Number(entry._PID) }
      if (e.process !== undefined && e.process.name === undefined && entry.SYSLOG_IDENTIFIER !== undefined) e.process.name = entry.SYSLOG_IDENTIFIER
      out.push(e)
    }
    // Split the bytes, not the text, so each line of a non-UTF-8 MESSAGE keeps its own raw bytes.
    const buf = bytes ?? Buffer.from(text, 'utf8')
    const parts: Buffer[] = []
    for (let start = 0; start <= buf.length;) {
      const nl = buf.indexOf(10, start)
      const end = nl < 0 ? buf.length : nl
      if (nl >= 0 || end > start) parts.push(buf.subarray(start, end))
      if (nl < 0) break
      start = nl + 1
    }
    if (parts.length > 1 && parts[parts.length - 1]?.length === 0) parts.pop()
    for (const part of parts) {
      const l = part.toString('utf8')
      const line: InputLine = { text: l, offset: 0, bytes: part.length }
      if (time !== undefined) line.time = time
      if (entry._HOSTNAME !== undefined) line.host = entry._HOSTNAME
      if (bytes !== undefined && !Buffer.from(l, 'utf8').equals(part)) line.raw = Buffer.from(part)
      this.parser.push(line, onEvent)
    }
    this.parser.flush(onEvent)
    return out
  }
}
