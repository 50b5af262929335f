import { createHash } from 'node:crypto'
import type { KeaEvent, ParseStatus } from './event.js'
import { markDerivable, newDerivation, PARSER_VERSION, type Derivation } from './derivation.js'
import type { InputLine } from './lines.js'
import { interpretMessage } from './kea/message.js'
import { builtinRules, type RuleSet } from './kea/rules.js'
import { IsoFormatter, isEventTime } from './time/iso.js'
import { compilePattern, emptyHeader, type HeaderFields, type LineParser } from './pattern/compile.js'
import { SCAN_BAD_TIME, SCAN_NONE } from './pattern/scanner.js'

export interface RecordParserOptions {
  /** log4cplus pattern the lines were written with. */
  pattern: string
  /** IANA zone for local-time (%D) patterns; default UTC. */
  timeZone?: string
  /** Stable identity of the stream; event ids are derived from it (see sourceIdentity). */
  sourceId: string
  /** log.file.path of the events. */
  path?: string
  /** host.name when the pattern has no %h and the transport gives none. */
  host?: string
  /** event.dataset when neither the logger nor the message ID tells (default kea.other). */
  dataset?: string
  /** A record (all its lines) is cut at this size (default 1 MiB). */
  maxRecordBytes?: number
  /** A record is closed after this many lines (default 5000). */
  maxRecordLines?: number
  rules?: RuleSet
  /** A compiled pattern to fork instead of compiling again. */
  compiled?: LineParser
  /** Count records per message ID in stats.byCode (costs a hash lookup per record). */
  countByCode?: boolean
  /**
   * Mark the events this parser can make again from their raw record alone (see
   * derivation.ts): for sources that hand events over as parsed (files), not those that add
   * fields afterwards. Not with custom `rules`.
   */
  rederivable?: boolean
  /** The time of a record that names none (default: now); a re-derivation gives the stored time. */
  clock?: () => number
  /**
   * Believe record times however far ahead of the clock (default: not past FUTURE_TOLERANCE_MS).
   * A re-derivation: the records it reads were written with their times checked (a record refused
   * then keeps its document), and its clock is a stored time, costly to read for every record.
   */
  trustTimes?: boolean
  /**
   * Events with their header fields and message only, the Kea rules not applied: a reader
   * testing a query on the message alone (full text) re-derives them at a fraction of the cost.
   */
  messageOnly?: boolean
}

export interface ParseStats {
  lines: number
  records: number
  continuationLines: number
  status: Record<ParseStatus, number>
  invalidUtf8: number
  truncated: number
  byCode: Map<string, number>
}

export function emptyStats (): ParseStats {
  return { lines: 0, records: 0, continuationLines: 0, status: { ok: 0, partial: 0, unmatched: 0 }, invalidUtf8: 0, truncated: 0, byCode: new Map() }
}

/**
 * The identity of a stream: a hash of its first line (and host). A file keeps its identity
 * when Kea renames it to .1, and a gzip'd copy has the same identity as the original, so
 * re-reading any of them yields the same event ids (Vector fingerprints files the same way).
 */
/** How much of a stream's start names it: its first line, cut at this many bytes. */
export const FINGERPRINT_BYTES = 1024

/**
 * The identity of a stream from the bytes at its start, or undefined while they do not yet
 * hold a complete first line (nor FINGERPRINT_BYTES of one). `ended`: no more bytes will come.
 */
export function identityFromHead (head: Buffer, host: string | undefined, ended = false): string | undefined {
  const nl = head.indexOf(10)
  if (nl < 0 && head.length < FINGERPRINT_BYTES && !ended) return undefined
  const end = nl < 0 ? Math.min(head.length, FINGERPRINT_BYTES) : Math.min(nl, FINGERPRINT_BYTES)
  return sourceIdentity(head.subarray(0, end), host)
}

export function sourceIdentity (firstLine: Buffer | string, host = ''): string {
  return createHash('sha256').update(host).update('\0').update(firstLine).digest('hex').slice(0, 20)
}

/** Kea level → ECS log.level, by first letter: a lookup keyed by the (fresh) string would hash it. */
function ecsLevel (level: string): string {
  switch (level.charCodeAt(0)) {
    case 73: if (level === 'INFO') return 'info'; break
    case 68: if (level === 'DEBUG') return 'debug'; break
    case 87: if (level === 'WARN') return 'warn'; break
    case 69: if (level === 'ERROR') return 'error'; break
    case 70: if (level === 'FATAL') return 'fatal'; break
    case 84: if (level === 'TRACE') return 'trace'; break
  }
  return level.toLowerCase()
}

/** The record being assembled; one per parser, reused (no allocation per record). */
interface Pending {
  open: boolean
  lines: InputLine[]
  bytes: number
  /** Some line was cut at the size limit / was not valid UTF-8. */
  truncated: boolean
  invalid: boolean
  /** The full-pattern match of the first line; valid while the record has one line. */
  match: RegExpExecArray | null
  /** The scanner's result for the first line (scanner path only). */
  scanned: number
}

/**
 * How far ahead of the clock reading it a record's time may be. Further, it is no time the record
 * was written at: one forged syslog datagram dated 2099 made its batch's coverage span reach
 * 2099, so that lease answers for any later time said the logs covered it. 26 hours is the widest
 * gap between two time zones: a pattern's local time read in the wrong zone is not refused.
 */
export const FUTURE_TOLERANCE_MS = 26 * 3_600_000
const FUTURE_REASON = 'timestamp more than 26 hours ahead of the clock'

/**
 * Assembles lines into Kea records and turns each into a KeaEvent.
 *
 * A record starts only at a line whose header matches the pattern; other lines continue the
 * open record (Kea's multi-line packet and lease dumps). A line that continues nothing is
 * emitted on its own as `unmatched`, raw text kept: no line is ever dropped.
 */
export class RecordParser {
  readonly stats: ParseStats = emptyStats()
  private readonly parser: LineParser
  private readonly rules: RuleSet
  private readonly opts: RecordParserOptions
  private readonly maxRecordBytes: number
  private readonly maxRecordLines: number
  private readonly pending: Pending = { open: false, lines: [], bytes: 0, truncated: false, invalid: false, match: null, scanned: SCAN_NONE }
  /** Header of the open record. With a scanner, the next line is read into `nextHeader` and the two swap. */
  private header: HeaderFields = emptyHeader()
  private nextHeader: HeaderFields = emptyHeader()
  private readonly headerOnly: RegExp
  private readonly file: { path: string } | undefined
  private readonly zone: string | undefined
  private readonly iso = new IsoFormatter()
  private readonly idPrefix: string
  private readonly derivation: Derivation | undefined
  private readonly clock: () => number
  /** The last event baseEvent made had a header time ahead of the clock (FUTURE_TOLERANCE_MS). */
  private future = false

  constructor (opts: RecordParserOptions) {
    this.opts = opts
    const compileOpts = opts.timeZone === undefined ? {} : { timeZone: opts.timeZone }
    this.parser = opts.compiled?.fork() ?? compilePattern(opts.pattern, compileOpts)
    this.rules = opts.rules ?? builtinRules()
    this.maxRecordBytes = opts.maxRecordBytes ?? 1024 * 1024
    this.maxRecordLines = opts.maxRecordLines ?? 5000
    this.headerOnly = this.parser.header
    this.file = opts.path === undefined ? undefined : { path: opts.path }
    this.zone = this.parser.zone
    this.idPrefix = opts.sourceId + '-'
    this.clock = opts.clock ?? Date.now
    this.derivation = opts.rederivable !== true || opts.rules !== undefined
      ? undefined
      : newDerivation({
        v: PARSER_VERSION,
        pattern: opts.pattern,
        sourceId: opts.sourceId,
        ...(opts.timeZone === undefined ? {} : { timeZone: opts.timeZone }),
        ...(opts.path === undefined ? {} : { path: opts.path }),
        ...(opts.host === undefined ? {} : { host: opts.host }),
        ...(opts.dataset === undefined ? {} : { dataset: opts.dataset }),
        ...(opts.maxRecordBytes === undefined ? {} : { maxRecordBytes: opts.maxRecordBytes }),
        ...(opts.maxRecordLines === undefined ? {} : { maxRecordLines: opts.maxRecordLines })
      })
  }

  /** Feed one line; completed records are passed to `emit`. */
  push (line: InputLine, emit: (e: KeaEvent) => void): void {
    this.stats.lines++
    if (line.raw !== undefined) this.stats.invalidUtf8++
    if (line.truncated === true) this.stats.truncated++
    const p = this.pending
    const scan = this.parser.scan
    let match: RegExpExecArray | null = null
    let scanned = SCAN_NONE
    let isHeader: boolean
    if (scan !== undefined) {
      scanned = scan(line.text, this.nextHeader)
      isHeader = scanned !== SCAN_NONE
    } else {
      match = this.parser.full.exec(line.text)
      isHeader = match !== null || this.headerOnly.test(line.text)
    }
    if (isHeader) {
      if (p.open) this.finish(emit)
      if (scan !== undefined) {
        const h = this.header
        this.header = this.nextHeader
        this.nextHeader = h
      }
      p.scanned = scanned
      p.open = true
      p.lines.push(line)
      p.bytes = line.bytes
      p.truncated = line.truncated === true
      p.invalid = line.raw !== undefined
      p.match = match
      return
    }
    if (p.open && p.lines.length < this.maxRecordLines && p.bytes + line.bytes + 1 <= this.maxRecordBytes) {
      p.lines.push(line)
      p.bytes += line.bytes + 1
      p.match = null
      if (line.truncated === true) p.truncated = true
      if (line.raw !== undefined) p.invalid = true
      this.stats.continuationLines++
      return
    }
    const wasOpen = p.open
    if (wasOpen) this.finish(emit)
    this.emitUnmatched(line, wasOpen ? 'continuation beyond the record size limit' : 'no header', emit)
  }

  /** Close the open record (end of input, idle timeout, before a checkpoint). */
  flush (emit: (e: KeaEvent) => void): void {
    if (this.pending.open) this.finish(emit)
  }

  /** Byte offset where the open record starts, or undefined: a checkpoint must not pass it. */
  get pendingOffset (): number | undefined {
    return this.pending.open ? this.pending.lines[0]?.offset : undefined
  }

  private finish (emit: (e: KeaEvent) => void): void {
    const p = this.pending
    const first = p.lines[0] as InputLine
    const text = p.lines.length === 1 ? first.text : p.lines.map((l) => l.text).join('\n')
    const rawLines = p.invalid ? p.lines.slice() : undefined
    p.open = false
    p.lines.length = 0
    const h = this.header
    let status: ParseStatus = 'ok'
    let reason: string | undefined
    let message: string
    const m = this.parser.scan !== undefined ? null : p.match ?? this.parser.full.exec(text)
    if (this.parser.scan !== undefined) {
      // The scanner read the header when the record started; %m runs to the record's end.
      const firstMessage = h.message ?? ''
      message = text === first.text ? firstMessage : text.slice(first.text.length - firstMessage.length)
      if ((p.scanned & SCAN_BAD_TIME) !== 0) { status = 'partial'; reason = 'unreadable timestamp' }
    } else if (m !== null) {
      if (!this.parser.extract(m, h)) { status = 'partial'; reason = 'unreadable timestamp' }
      message = h.message ?? ''
      if (h.messageTruncated) { status = 'partial'; reason = 'pattern shows only a truncated message' }
    } else {
      // The header matched but text after the message did not (e.g. a pattern with literal
      // text after %m and a multi-line message): keep the header fields and the rest as message.
      const hm = this.headerOnly.exec(text) as RegExpExecArray
      if (!this.parser.extract(hm, h)) reason = 'unreadable timestamp'
      message = text.slice(hm[0].length)
      status = 'partial'
      reason = reason ?? 'record does not match the whole pattern'
    }
    const event = this.baseEvent(first, text, message, status, h)
    // A record both partial for its own reason and dated ahead of the clock says both.
    if (reason !== undefined) event.kea.parse.reason = this.future ? `${reason}; ${FUTURE_REASON}` : reason
    if (p.truncated || p.bytes >= this.maxRecordBytes) event.kea.parse.truncated = true
    if (rawLines !== undefined) {
      event.kea.parse.raw_base64 = Buffer.concat(rawLines.flatMap((l, i) => [
        ...(i > 0 ? [Buffer.from('\n')] : []), l.raw ?? Buffer.from(l.text, 'utf8')
      ])).toString('base64')
    }
    if (this.opts.messageOnly === true) {
      emit(event)
      return
    }
    const result = interpretMessage(message, event, this.rules)
    if (result.formMismatch && event.kea.parse.status === 'ok') {
      event.kea.parse.status = 'partial'
      event.kea.parse.reason = 'message text does not match any form of its rule'
    }
    if (event.event.dataset === '') event.event.dataset = datasetOf(h.logger, event.event.code, result.rule?.family, this.opts.dataset)
    // Cut or undecodable records keep bytes the raw text does not hold: their documents are stored.
    // So do records dated ahead of the clock: read again later, their time would be believed.
    if (this.derivation !== undefined && rawLines === undefined && event.kea.parse.truncated === undefined && !this.future) markDerivable(event, this.derivation)
    this.count(event)
    emit(event)
  }

  private emitUnmatched (line: InputLine, reason: string, emit: (e: KeaEvent) => void): void {
    const h = emptyHeader()
    const event = this.baseEvent(line, line.text, line.text, 'unmatched', h)
    event.kea.parse.reason = reason
    if (line.truncated === true) event.kea.parse.truncated = true
    if (line.raw !== undefined) event.kea.parse.raw_base64 = line.raw.toString('base64')
    event.event.dataset = this.opts.dataset ?? 'kea.other'
    // A line cut off its record by the size limit reads as 'no header' when parsed alone.
    if (this.derivation !== undefined && reason === 'no header' && line.raw === undefined && line.truncated !== true) markDerivable(event, this.derivation)
    this.count(event)
    emit(event)
  }

  private count (event: KeaEvent): void {
    this.stats.records++
    this.stats.status[event.kea.parse.status]++
    if (this.opts.countByCode === true) {
      const code = event.event.code ?? '(none)'
      this.stats.byCode.set(code, (this.stats.byCode.get(code) ?? 0) + 1)
    }
  }

  private baseEvent (first: InputLine, original: string, message: string, status: ParseStatus, h: HeaderFields): KeaEvent {
    const limit = this.opts.trustTimes === true ? Number.POSITIVE_INFINITY : this.clock() + FUTURE_TOLERANCE_MS
    // A source's own time for the line (syslog header, journal) that no store can hold, or far
    // ahead of the clock, counts as none: the line is stored at its receive time, with
    // event.ingested saying so.
    const lineTime = first.time !== undefined && isEventTime(first.time) && first.time <= limit ? first.time : undefined
    // A header time far ahead of the clock is not believed either (see FUTURE_TOLERANCE_MS).
    const future = h.time !== undefined && h.time > limit
    this.future = future
    const headerTime = future ? undefined : h.time
    const time = headerTime ?? lineTime ?? this.clock()
    const iso = this.iso.format(time, headerTime === undefined ? undefined : h.micros)
    const logger = h.logger
    const root = logger === undefined ? undefined : loggerRoot(logger)
    let proc: KeaEvent['process']
    if (logger !== undefined || h.pid !== undefined || h.thread !== undefined) {
      proc = { name: root, pid: h.pid, thread: h.thread === undefined ? undefined : { id: h.thread } }
    }
    const host = h.host ?? first.host ?? this.opts.host
    const timed = headerTime !== undefined || lineTime !== undefined
    // One literal with every field (undefined until set; JSON.stringify drops those): all
    // events share hidden classes. See the NOTE in kea/message.ts.
    return {
      '@timestamp': iso,
      message,
      event: {
        id: this.idPrefix + first.offset.toString(16),
        original,
        code: undefined,
        action: undefined,
        dataset: root === undefined ? '' : datasetOfRoot(root),
        module: 'kea',
        kind: 'event',
        category: undefined,
        ingested: timed ? undefined : iso,
        timezone: this.zone !== undefined && headerTime !== undefined ? this.zone : undefined
      },
      log: {
        level: h.level === undefined ? undefined : ecsLevel(h.level),
        logger,
        file: this.file,
        offset: first.offset
      },
      process: proc,
      host: host === undefined ? undefined : { name: host },
      client: undefined,
      source: undefined,
      related: undefined,
      kea: {
        hwaddr: undefined,
        hwtype: undefined,
        client_id: undefined,
        duid: undefined,
        iaid: undefined,
        transaction_id: undefined,
        subnet_id: undefined,
        subnet: undefined,
        shared_network: undefined,
        hostname: undefined,
        lease: undefined,
        lease_owner: undefined,
        ha: undefined,
        requested_address: undefined,
        source_id: this.opts.sourceId,
        parse: future ? { status: status === 'ok' ? 'partial' : status, reason: FUTURE_REASON, raw_base64: undefined, truncated: undefined } : { status, reason: undefined, raw_base64: undefined, truncated: undefined }
      }
    }
  }
}

/** The daemon part of a logger name: kea-dhcp4.leases → kea-dhcp4. */
function loggerRoot (logger: string): string {
  const dot = logger.indexOf('.')
  return dot < 0 ? logger : logger.slice(0, dot)
}

function datasetOfRoot (root: string): string {
  return root === 'kea-dhcp4' ? 'kea.dhcp4' : root === 'kea-dhcp6' ? 'kea.dhcp6' : 'kea.other'
}

function datasetOf (logger: string | undefined, code: string | undefined, family: 4 | 6 | undefined, fallback: string | undefined): string {
  if (logger !== undefined) return datasetOfRoot(loggerRoot(logger))
  if (family === 4 || (code !== undefined && /^(DHCP4_|ALLOC_ENGINE_V4_|DHCPSRV_MEMFILE_\w*4)/.test(code))) return 'kea.dhcp4'
  if (family === 6 || (code !== undefined && /^(DHCP6_|ALLOC_ENGINE_V6_|DHCPSRV_MEMFILE_\w*6)/.test(code))) return 'kea.dhcp6'
  return fallback ?? 'kea.other'
}
