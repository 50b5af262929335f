import { PatternSyntaxError, PatternUnsupportedError } from '../../errors.js'
import { compileTimeFormat, escapeRegex, fixedLayout, type FixedLayout, type TimeComponent } from '../time/strftime.js'
import { LocalTimeResolver } from '../time/zone.js'
import { isEventTime } from '../time/iso.js'
import { buildScanner, type Scanner } from './scanner.js'
import { tokenizePattern, type ConversionToken, type PatternToken } from './tokenize.js'

/** What a log4cplus header yields, before the Kea message text is interpreted. */
export interface HeaderFields {
  /** UTC epoch milliseconds; undefined when the pattern has no usable date. */
  time: number | undefined
  /** Microseconds within the millisecond (from `%Q`), 0 otherwise. */
  micros: number
  level: string | undefined
  logger: string | undefined
  pid: number | undefined
  thread: number | string | undefined
  threadAlt: number | undefined
  host: string | undefined
  message: string | undefined
  /** True when the pattern only shows a truncated form of the message. */
  messageTruncated: boolean
}

export interface CompileOptions {
  /** IANA zone for `%D` (local time) patterns. */
  timeZone?: string
  /** Date parts a format leaves out (e.g. `%H:%M:%S` only) come from this instant. */
  referenceTime?: number
  /** Use the regex path even where a scanner could be built (tests compare the two). */
  noScanner?: boolean
}

/** Reads one record's header; returns undefined when the record does not match. */
export interface LineParser {
  readonly pattern: string
  /** Matches only the part before the message: tells where a record starts. */
  readonly header: RegExp
  /** Matches a whole record (several lines joined with `\n` for multi-line records). */
  readonly full: RegExp
  /** Fills `out` from a successful `full.exec()`; returns false if a value is unusable. */
  extract: (m: RegExpExecArray, out: HeaderFields) => boolean
  /** Resolver for local times; one per stream, see LocalTimeResolver (undefined for UTC). */
  readonly resolver: LocalTimeResolver | undefined
  /** The zone local-time (%D) headers are read in; undefined when the pattern has none. */
  readonly zone: string | undefined
  /** A fresh parser for another stream (local-time fold state is per stream). */
  fork: () => LineParser
  /** A regex-free reader of the same pattern, when the pattern allows one (see scanner.ts). */
  readonly scan: Scanner | undefined
}

const LEVELS = '(FATAL|ERROR|WARN|INFO|DEBUG|TRACE)'
const LEVEL_CHARS = '[A-Z]'
// Kea logger names are `<root>.<sub>`: letters, digits, '-', '_' and dots.
const LOGGER = '[A-Za-z0-9_.\\-]'

type FieldName = 'level' | 'logger' | 'pid' | 'thread' | 'threadAlt' | 'host' | 'message' | 'ignore'

interface Capture {
  field: FieldName | 'time'
  /** Lower is better when a field occurs more than once (full value beats a truncated one). */
  quality: number
  /** For time captures: which date conversion and component. */
  dateIndex?: number
  component?: TimeComponent | 'fixed'
}

interface DateSpec {
  local: boolean
  /** Set when the date is captured whole and read by offsets (see fixedLayout). */
  layout: FixedLayout | undefined
}

/**
 * Compiles a log4cplus PatternLayout string into a record parser, once, at start.
 *
 * The result is one anchored regular expression for the whole record plus one for the header
 * (everything before `%m`), which decides where a record starts. Kea always begins `%m` with
 * its message ID, so the header also requires an ID-shaped word: continuation lines of
 * multi-line dumps never look like that.
 */
export function compilePattern (pattern: string, options: CompileOptions = {}): LineParser {
  const tokens = stripTrailingNewline(tokenizePattern(pattern), pattern)
  const captures: Capture[] = []
  const dates: DateSpec[] = []
  let fullSource = '^'
  let headerSource: string | undefined
  let hasFullMessage = false

  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t] as PatternToken
    if (token.kind === 'literal') {
      fullSource += literalSource(token.text)
      continue
    }
    if (token.char === 'm' && headerSource === undefined) {
      // A lookahead, so that the header match ends exactly where the message begins.
      const idShape = token.maxWidth === undefined ? '[A-Z][A-Z0-9_]*(?: |$)' : '[A-Z][A-Z0-9_]*'
      headerSource = fullSource + (token.minWidth && !token.leftAlign ? ' *' : '') + `(?=${idShape})`
    }
    fullSource += conversionSource(token, captures, dates, pattern)
    if (token.char === 'm' && token.maxWidth === undefined) hasFullMessage = true
  }
  // Without %m a record has no message: no message ID to tell records from continuation lines
  // and nothing to interpret. Kea logs nothing useful with such a pattern; a pattern like this
  // is a mistake ('%', a date format given as the pattern), refused before lines are stored.
  if (headerSource === undefined) throw new PatternSyntaxError(JSON.stringify(pattern), pattern.length, 'it has no %m (the message); Kea\'s patterns end in %m%n')
  fullSource += '$'
  const header = new RegExp(headerSource)
  const full = new RegExp(fullSource, 's')

  const referenceTime = options.referenceTime ?? Date.now()
  const zone = dates.some((d) => d.local) ? options.timeZone ?? 'UTC' : undefined
  // Validates the zone name even for UTC; only other zones need resolving at run time.
  const zoneResolver = zone === undefined ? undefined : new LocalTimeResolver(zone)
  const resolver = zone === 'UTC' || zone === 'Etc/UTC' ? undefined : zoneResolver
  const extract = buildExtractor(captures, dates, resolver, referenceTime, hasFullMessage)
  return {
    pattern,
    header,
    full,
    extract,
    resolver,
    zone,
    scan: options.noScanner === true ? undefined : buildScanner(tokens, dates.map((d) => d.layout), resolver),
    fork: () => compilePattern(pattern, options)
  }
}

function stripTrailingNewline (tokens: PatternToken[], pattern: string): PatternToken[] {
  const out = tokens.slice()
  const last = out[out.length - 1]
  if (last?.kind === 'conversion' && last.char === 'n') {
    out.pop()
  } else if (last?.kind === 'literal' && /\r?\n$/.test(last.text)) {
    const text = last.text.replace(/\r?\n$/, '')
    if (text.length > 0) out[out.length - 1] = { ...last, text }
    else out.pop()
  }
  for (const tok of out) {
    const pos = tok.kind === 'literal' ? tok.pos + tok.text.indexOf('\n') : tok.pos
    if ((tok.kind === 'conversion' && tok.char === 'n') || (tok.kind === 'literal' && tok.text.includes('\n'))) {
      throw new PatternUnsupportedError(tok.kind === 'literal' ? '"\\n"' : '"%n"', JSON.stringify(pattern), pos,
        'a newline is only supported at the end of the pattern (it would split every record over two lines)')
    }
  }
  return out
}

function literalSource (text: string): string {
  // Runs of spaces in a pattern are written exactly; keep them exact so headers stay strict.
  return escapeRegex(text)
}

function conversionSource (tok: ConversionToken, captures: Capture[], dates: DateSpec[], pattern: string): string {
  const truncated = tok.maxWidth !== undefined
  const quality = truncated ? 2 : 0
  let value: string
  switch (tok.char) {
    case 'd':
    case 'D': {
      if (truncated) {
        throw new PatternUnsupportedError(JSON.stringify(tok.source), JSON.stringify(pattern), tok.pos,
          'a truncated date cannot be read back')
      }
      const format = tok.option === undefined || tok.option === '' ? '%Y-%m-%d %H:%M:%S' : tok.option
      const compiled = compileTimeFormat(format)
      const dateIndex = dates.length
      const layout = fixedLayout(format)
      dates.push({ local: tok.char === 'D', layout })
      if (layout !== undefined) {
        // One capture for the whole date; the inner groups become non-capturing.
        captures.push({ field: 'time', quality: 0, dateIndex, component: 'fixed' })
        return pad(tok, '(' + compiled.source.replace(/\((?!\?)/g, '(?:') + ')')
      }
      for (const component of compiled.groups) captures.push({ field: 'time', quality: 0, dateIndex, component })
      return pad(tok, compiled.source)
    }
    case 'p':
      if (truncated) return pad(tok, capture(captures, 'level', 3, `(${LEVEL_CHARS}{0,${tok.maxWidth}})`))
      return pad(tok, capture(captures, 'level', quality, LEVELS))
    case 'c': {
      // %c{N} keeps the N right-most components: a partial logger name.
      const q = tok.option !== undefined && tok.option !== '' ? 1 : quality
      const count = truncated ? `{0,${tok.maxWidth}}` : '+'
      return pad(tok, capture(captures, 'logger', q, `(${LOGGER}${count})`))
    }
    case 'i':
      return pad(tok, capture(captures, 'pid', quality, truncated ? `(\\d{0,${tok.maxWidth}})` : '(\\d+)'))
    case 't':
      // No '.': Kea's thread ids are numbers, and `[%c.%t]` (kea-syslog) with a '.' in both
      // classes backtracked over every dot of a line: 65 KB of "a." held the process 4 s.
      return pad(tok, capture(captures, 'thread', quality, truncated ? `([^\\s\\].]{0,${tok.maxWidth}})` : '([^\\s\\].)]+)'))
    case 'T':
      return pad(tok, capture(captures, 'threadAlt', quality, truncated ? `(\\d{0,${tok.maxWidth}})` : '(\\d+)'))
    case 'h':
    case 'H':
      return pad(tok, capture(captures, 'host', tok.char === 'H' ? quality : quality + 1, truncated ? `(\\S{0,${tok.maxWidth}})` : '(\\S+)'))
    case 'm':
      value = truncated ? `(.{0,${tok.maxWidth}})` : '(.*)'
      return pad(tok, capture(captures, 'message', quality, value))
    case 'r':
    case 'L':
      return pad(tok, truncated ? `\\d{0,${tok.maxWidth}}` : '\\d+')
    case 'b':
    case 'F':
      return pad(tok, truncated ? `\\S{0,${tok.maxWidth}}` : '\\S+?')
    case 'l':
      return pad(tok, truncated ? `\\S{0,${tok.maxWidth}}` : '\\S+?:\\d+')
    // Free text Kea never fills (NDC, MDC) or that may contain anything (env, function name).
    case 'E':
    case 'M':
    case 'x':
    case 'X':
      return pad(tok, truncated ? `.{0,${tok.maxWidth}}?` : '.*?')
    default:
      throw new PatternUnsupportedError(JSON.stringify(tok.source), JSON.stringify(pattern), tok.pos,
        'no reader for this conversion')
  }
}

function capture (captures: Capture[], field: FieldName, quality: number, source: string): string {
  captures.push({ field, quality })
  return source
}

/** Adds the padding a `%5x` / `%-5x` modifier may have written around a value. */
function pad (tok: ConversionToken, source: string): string {
  if (tok.minWidth === undefined || tok.minWidth === 0) return source
  return tok.leftAlign ? `${source} *` : ` *${source}`
}

const MONTH_INDEX: Record<string, number> = {
  jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11
}

interface DateParts {
  year: number; month: number; day: number; hour: number; minute: number; second: number
  millis: number; micros: number; epoch: number; offset: number; ampm: string; dayOfYear: number
  seen: number
}

const SEEN_DATE = 1
const SEEN_TIME = 2
const SEEN_EPOCH = 4
const SEEN_OFFSET = 8
const SEEN_SUBSEC = 16
const SEEN_MICROS = 32

function buildExtractor (
  captures: Capture[],
  dates: DateSpec[],
  resolver: LocalTimeResolver | undefined,
  referenceTime: number,
  hasFullMessage: boolean
): (m: RegExpExecArray, out: HeaderFields) => boolean {
  const ref = new Date(referenceTime)
  const parts: DateParts[] = dates.map(() => blankParts())
  const best = new Map<FieldName, number>()
  // Keep, for each field, only the best-quality capture (first one on ties).
  captures.forEach((c, i) => {
    if (c.field === 'time' || c.field === 'ignore') return
    const prev = best.get(c.field)
    if (prev === undefined || c.quality < (captures[prev] as Capture).quality) best.set(c.field, i)
  })
  const fieldGroups = [...best.entries()].map(([field, i]) => ({ field, group: i + 1 }))
  const timeGroups = captures.flatMap((c, i) => c.field === 'time' ? [{ group: i + 1, c }] : [])
  const fast = generateExtractor(fieldGroups, timeGroups, dates, resolver, hasFullMessage)
  if (fast !== undefined) return fast

  return (m, out) => {
    out.time = undefined
    out.micros = 0
    out.level = undefined
    out.logger = undefined
    out.pid = undefined
    out.thread = undefined
    out.threadAlt = undefined
    out.host = undefined
    out.message = undefined
    out.messageTruncated = !hasFullMessage
    for (let i = 0; i < fieldGroups.length; i++) {
      const fg = fieldGroups[i] as { field: FieldName, group: number }
      const v = m[fg.group]
      if (v === undefined) continue
      switch (fg.field) {
        case 'level': out.level = v.length >= 4 ? v : expandLevel(v); break
        case 'logger': out.logger = v; break
        case 'pid': out.pid = Number(v); break
        case 'thread': out.thread = /^\d{1,15}$/.test(v) ? Number(v) : v; break
        case 'threadAlt': out.threadAlt = Number(v); break
        case 'host': out.host = v; break
        case 'message': out.message = v; break
      }
    }
    if (timeGroups.length === 0) return true
    for (const p of parts) resetParts(p)
    for (let i = 0; i < timeGroups.length; i++) {
      const tg = timeGroups[i] as { group: number, c: Capture }
      const v = m[tg.group]
      if (v === undefined) continue
      const p = parts[tg.c.dateIndex as number] as DateParts
      switch (tg.c.component) {
        case 'year': p.year = +v; p.seen |= SEEN_DATE; break
        case 'year2': p.year = 2000 + +v; p.seen |= SEEN_DATE; break
        case 'month': p.month = +v - 1; p.seen |= SEEN_DATE; break
        case 'monthName': p.month = MONTH_INDEX[v.slice(0, 3).toLowerCase()] ?? -1; p.seen |= SEEN_DATE; break
        case 'day': p.day = +v; p.seen |= SEEN_DATE; break
        case 'dayOfYear': p.dayOfYear = +v; p.seen |= SEEN_DATE; break
        case 'hour': p.hour = +v; p.seen |= SEEN_TIME; break
        case 'hour12': p.hour = +v % 12; p.seen |= SEEN_TIME; break
        case 'ampm': p.ampm = v.toUpperCase(); break
        case 'minute': p.minute = +v; p.seen |= SEEN_TIME; break
        case 'second': p.second = +v; p.seen |= SEEN_TIME; break
        case 'millis': p.millis = +v; p.seen |= SEEN_SUBSEC; break
        case 'fracMillisMicros': p.millis = +v.slice(0, 3); p.micros = +v.slice(4); p.seen |= SEEN_SUBSEC | SEEN_MICROS; break
        case 'epoch': p.epoch = +v; p.seen |= SEEN_EPOCH; break
        case 'offset': {
          const sign = v[0] === '-' ? -1 : 1
          p.offset = sign * (+v.slice(1, 3) * 60 + +v.slice(3, 5)) * 60_000
          p.seen |= SEEN_OFFSET
          break
        }
        case 'zoneName': break
        case 'fixed': {
          const layout = (dates[tg.c.dateIndex as number] as DateSpec).layout as FixedLayout
          for (const f of layout.fields) {
            const n = Number(v.slice(f.offset, f.offset + f.width))
            switch (f.component) {
              case 'year': p.year = n; break
              case 'month': p.month = n - 1; break
              case 'day': p.day = n; break
              case 'hour': p.hour = n; break
              case 'minute': p.minute = n; break
              case 'second': p.second = n; break
              case 'millis': p.millis = n; p.seen |= SEEN_SUBSEC; break
            }
          }
          p.seen |= SEEN_DATE | SEEN_TIME
          break
        }
      }
    }
    return resolveTime(parts, dates, resolver, ref, out)
  }
}

const FAST_COMPONENTS = new Set<TimeComponent>(['year', 'month', 'day', 'hour', 'minute', 'second', 'millis'])
const DIGITS = /^\d{1,15}$/

/**
 * The hot path: for a pattern with one date made of Y m d H M S [q] (Kea's defaults and most
 * custom patterns) the extractor is generated as straight-line code with fixed group
 * indexes. Only integers from the compiled pattern go into the source text.
 */
function generateExtractor (
  fieldGroups: Array<{ field: FieldName, group: number }>,
  timeGroups: Array<{ group: number, c: Capture }>,
  dates: DateSpec[],
  resolver: LocalTimeResolver | undefined,
  hasFullMessage: boolean
): ((m: RegExpExecArray, out: HeaderFields) => boolean) | undefined {
  if (dates.length > 1) return undefined
  const g = (n: number): string => `m[${Math.trunc(n)}]`
  // Reads the component at a fixed offset of the date text as decimal digits.
  const layout = dates[0]?.layout
  const comp = new Map<TimeComponent, string>()
  if (layout !== undefined) {
    const group = (timeGroups[0] as { group: number }).group
    for (const f of layout.fields) {
      const digits: string[] = []
      for (let i = 0; i < f.width; i++) digits.push(`(t.charCodeAt(${f.offset + i}) - 48)`)
      comp.set(f.component, digits.reduce((acc, d) => `(${acc} * 10 + ${d})`))
    }
    comp.set('__text' as TimeComponent, `const t = ${g(group)};`)
  } else {
    for (const t of timeGroups) {
      const c = t.c.component as TimeComponent
      if (!FAST_COMPONENTS.has(c) || comp.has(c)) return undefined
      comp.set(c, `+${g(t.group)}`)
    }
  }
  if (dates.length === 1 && !['year', 'month', 'day', 'hour', 'minute', 'second'].every((c) => comp.has(c as TimeComponent))) return undefined
  const lines: string[] = [`out.micros = 0; out.messageTruncated = ${hasFullMessage ? 'false' : 'true'};`]
  const set = new Set(fieldGroups.map((f) => f.field))
  for (const f of ['level', 'logger', 'pid', 'thread', 'threadAlt', 'host', 'message'] as const) {
    if (!set.has(f)) lines.push(`out.${f} = undefined;`)
  }
  for (const { field, group } of fieldGroups) {
    const v = g(group)
    switch (field) {
      case 'level': lines.push(`{ const v = ${v}; out.level = v === undefined ? undefined : v.length >= 4 ? v : expandLevel(v); }`); break
      case 'pid': case 'threadAlt': lines.push(`{ const v = ${v}; out.${field} = v === undefined ? undefined : +v; }`); break
      case 'thread': lines.push(`{ const v = ${v}; out.thread = v === undefined ? undefined : DIGITS.test(v) ? +v : v; }`); break
      case 'logger': case 'host': case 'message': lines.push(`out.${field} = ${v};`); break
    }
  }
  if (dates.length === 0) {
    lines.push('out.time = undefined; return true;')
  } else {
    const ms = comp.get('millis') ?? '0'
    lines.push(
      comp.get('__text' as TimeComponent) ?? '',
      `const mo = ${comp.get('month') as string} - 1, d = ${comp.get('day') as string}, h = ${comp.get('hour') as string}, mi = ${comp.get('minute') as string}, s = ${comp.get('second') as string};`,
      'if (mo > 11 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) { out.time = undefined; return false; }',
      // Date.UTC once per calendar day; within a day the arithmetic is exact.
      `const y = ${comp.get('year') as string}, dayKey = y * 416 + mo * 32 + d;`,
      'if (dayKey !== day.key) { day.key = dayKey; day.ms = Date.UTC(y, mo, d); }',
      `const wall = day.ms + ((h * 60 + mi) * 60 + s) * 1000 + ${ms};`,
      (dates[0] as DateSpec).local && resolver !== undefined ? 'out.time = resolver.resolve(wall);' : 'out.time = wall;',
      // A time no store holds (year 0000 reads as 1900): as keepEventTime.
      'if (!isEventTime(out.time)) { out.time = undefined; return false; }',
      'return true;'
    )
  }
  // The source is built from integers only (see above), never from input text.
  const factory = new Function('expandLevel', 'DIGITS', 'resolver', 'day', 'isEventTime', `return function extract (m, out) {\n${lines.join('\n')}\n}`) as
    (e: typeof expandLevel, d: RegExp, r: LocalTimeResolver | undefined, day: { key: number, ms: number }, t: typeof isEventTime) => (m: RegExpExecArray, out: HeaderFields) => boolean
  return factory(expandLevel, DIGITS, resolver, { key: -1, ms: 0 }, isEventTime)
}

function blankParts (): DateParts {
  return { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, millis: 0, micros: 0, epoch: 0, offset: 0, ampm: '', dayOfYear: 0, seen: 0 }
}

function resetParts (p: DateParts): void {
  p.year = -1; p.month = -1; p.day = -1; p.hour = 0; p.minute = 0; p.second = 0
  p.millis = 0; p.micros = 0; p.epoch = 0; p.offset = 0; p.ampm = ''; p.dayOfYear = -1; p.seen = 0
}

/**
 * Several date conversions may appear in one pattern (`%d` … `%D{%s}` … `%D{%H:%M:%S.%Q}`).
 * The instant comes from the most exact one: an epoch, else a full date with an offset, else a
 * full date in its own zone, else a time of day on the reference date. Sub-second precision
 * is taken from whichever conversion carries the most of it.
 */
function resolveTime (parts: DateParts[], dates: DateSpec[], resolver: LocalTimeResolver | undefined, ref: Date, out: HeaderFields): boolean {
  let millis = 0
  let micros = 0
  let subsecRank = 0
  for (const p of parts) {
    if ((p.seen & SEEN_SUBSEC) === 0) continue
    const rank = (p.seen & SEEN_MICROS) !== 0 ? 2 : 1
    if (rank > subsecRank) { millis = p.millis; micros = p.micros; subsecRank = rank }
  }
  let chosen = -1
  let score = 0
  parts.forEach((p, i) => {
    let s = 0
    if (p.seen & SEEN_EPOCH) s = 4
    else if ((p.seen & SEEN_DATE) && (p.seen & SEEN_OFFSET)) s = 3
    else if (p.seen & SEEN_DATE) s = 2
    else if (p.seen & SEEN_TIME) s = 1
    if (s > score) { score = s; chosen = i }
  })
  if (chosen < 0) return true
  const p = parts[chosen] as DateParts
  if (score === 4) {
    out.time = p.epoch * 1000 + millis
    out.micros = micros
    return keepEventTime(out)
  }
  if (p.ampm === 'PM') p.hour += 12
  const local = (dates[chosen] as DateSpec).local
  if (p.year < 0) p.year = local ? ref.getFullYear() : ref.getUTCFullYear()
  if (p.dayOfYear >= 0 && p.month < 0) { p.month = 0; p.day = p.dayOfYear }
  if (p.month < 0) p.month = local ? ref.getMonth() : ref.getUTCMonth()
  if (p.day < 0) p.day = local ? ref.getDate() : ref.getUTCDate()
  if (p.month > 11 || p.day < 1 || p.day > 31 || p.hour > 23 || p.minute > 59 || p.second > 60) return false
  const wall = Date.UTC(p.year, p.month, p.day, p.hour, p.minute, p.second, millis)
  if (Number.isNaN(wall)) return false
  if (p.seen & SEEN_OFFSET) out.time = wall - p.offset
  else if (local && resolver !== undefined) out.time = resolver.resolve(wall)
  else out.time = wall
  out.micros = micros
  return keepEventTime(out)
}

/**
 * A time no store can hold (a 12-digit epoch, year 0, year 10000 by its offset) reads as no time:
 * the record is marked "unreadable timestamp" and stored at its receive time, its text kept.
 */
function keepEventTime (out: HeaderFields): boolean {
  if (out.time !== undefined && isEventTime(out.time)) return true
  out.time = undefined
  return false
}

// `%.-1p` (log4cplus's own example) prints the first letter; Kea's level names differ in it.
const LEVEL_BY_PREFIX = ['FATAL', 'ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE']
function expandLevel (prefix: string): string | undefined {
  if (prefix.length === 0) return undefined
  return LEVEL_BY_PREFIX.find((l) => l.startsWith(prefix))
}

export function emptyHeader (): HeaderFields {
  return {
    time: undefined,
    micros: 0,
    level: undefined,
    logger: undefined,
    pid: undefined,
    thread: undefined,
    threadAlt: undefined,
    host: undefined,
    message: undefined,
    messageTruncated: false
  }
}
