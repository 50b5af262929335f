import { StrftimeUnsupportedError } from '../../errors.js'

/** The date/time components a strftime capture group can deliver. */
export type TimeComponent =
  | 'year' | 'year2' | 'month' | 'monthName' | 'day' | 'dayOfYear'
  | 'hour' | 'hour12' | 'ampm' | 'minute' | 'second'
  | 'millis' | 'fracMillisMicros' | 'epoch' | 'offset' | 'zoneName'

export interface CompiledTimeFormat {
  /** Regular-expression source with one capture group per entry of `groups`. */
  source: string
  groups: TimeComponent[]
}

const WEEKDAYS = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
const WEEKDAYS_FULL = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)'
const MONTHS = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
const MONTHS_FULL = '(January|February|March|April|May|June|July|August|September|October|November|December)'

// Each code expands to regex source plus the components its groups fill. Composite codes
// (%T, %F, %c …) are expanded recursively; the C locale is assumed, as Kea runs with it.
const SIMPLE: Record<string, [string, TimeComponent[]] | string> = {
  a: [WEEKDAYS, []],
  A: [WEEKDAYS_FULL, []],
  b: [MONTHS, ['monthName']],
  h: [MONTHS, ['monthName']],
  B: [MONTHS_FULL, ['monthName']],
  C: ['\\d{2}', []],
  d: ['(\\d{2})', ['day']],
  e: [' ?(\\d{1,2})', ['day']],
  H: ['(\\d{2})', ['hour']],
  k: [' ?(\\d{1,2})', ['hour']],
  I: ['(\\d{2})', ['hour12']],
  l: [' ?(\\d{1,2})', ['hour12']],
  j: ['(\\d{3})', ['dayOfYear']],
  m: ['(\\d{2})', ['month']],
  M: ['(\\d{2})', ['minute']],
  p: ['(AM|PM)', ['ampm']],
  P: ['(am|pm)', ['ampm']],
  S: ['(\\d{2})', ['second']],
  s: ['(\\d{1,12})', ['epoch']],
  u: ['[1-7]', []],
  w: ['[0-6]', []],
  U: ['\\d{2}', []],
  V: ['\\d{2}', []],
  W: ['\\d{2}', []],
  g: ['\\d{2}', []],
  G: ['\\d{4}', []],
  y: ['(\\d{2})', ['year2']],
  Y: ['(\\d{4})', ['year']],
  z: ['([+-]\\d{4})', ['offset']],
  Z: ['([A-Za-z]{1,6}|[+-]\\d{2,4})', ['zoneName']],
  q: ['(\\d{3})', ['millis']],
  Q: ['(\\d{3}\\.\\d{3})', ['fracMillisMicros']],
  t: ['\\t', []],
  '%': ['%', []],
  c: '%a %b %e %H:%M:%S %Y',
  D: '%m/%d/%y',
  F: '%Y-%m-%d',
  r: '%I:%M:%S %p',
  R: '%H:%M',
  T: '%H:%M:%S',
  x: '%m/%d/%y',
  X: '%H:%M:%S'
}

export function escapeRegex (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

/** Compile a strftime format (plus log4cplus's %q %Q %s) into regex source. */
export function compileTimeFormat (format: string): CompiledTimeFormat {
  const out: CompiledTimeFormat = { source: '', groups: [] }
  expand(format, format, out, 0)
  return out
}

function expand (format: string, whole: string, out: CompiledTimeFormat, depth: number): void {
  let i = 0
  while (i < format.length) {
    const ch = format[i] as string
    if (ch !== '%') {
      out.source += /\s/.test(ch) ? (ch === ' ' ? ' ' : '\\s') : escapeRegex(ch)
      i++
      continue
    }
    const code = format[i + 1]
    const spec = code === undefined ? undefined : SIMPLE[code]
    if (spec === undefined) {
      throw new StrftimeUnsupportedError(JSON.stringify('%' + (code ?? '')), JSON.stringify(whole), i)
    }
    if (typeof spec === 'string') {
      if (depth > 3) throw new StrftimeUnsupportedError(JSON.stringify('%' + code), JSON.stringify(whole), i)
      expand(spec, whole, out, depth + 1)
    } else {
      out.source += spec[0]
      out.groups.push(...spec[1])
    }
    i += 2
  }
}
