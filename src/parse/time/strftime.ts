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

/** Where each component sits in a date text whose every part has a fixed width. */
export interface FixedLayout {
  length: number
  /** The layout's text with '0' at every digit position: its literal characters, in place. */
  template: string
  fields: Array<{ component: 'year' | 'month' | 'day' | 'hour' | 'minute' | 'second' | 'millis', offset: number, width: number }>
}

const FIXED: Record<string, [FixedLayout['fields'][number]['component'], number] | string> = {
  Y: ['year', 4], m: ['month', 2], d: ['day', 2], H: ['hour', 2], M: ['minute', 2], S: ['second', 2], q: ['millis', 3],
  F: '%Y-%m-%d', T: '%H:%M:%S'
}

/**
 * The layout of a format made only of fixed-width numeric fields and literal text (Kea's
 * `%Y-%m-%d %H:%M:%S.%q` and most custom ones), or undefined. Such a date is captured as one
 * group and read by character offsets instead of seven captures (bench/parse).
 */
export function fixedLayout (format: string): FixedLayout | undefined {
  const out: FixedLayout = { length: 0, template: '', fields: [] }
  const walk = (f: string, depth: number): boolean => {
    for (let i = 0; i < f.length; i++) {
      if (f[i] !== '%') {
        // The regex reads other whitespace as \s (any): only a plain space is exact.
        if (/\s/.test(f[i] as string) && f[i] !== ' ') return false
        out.length++
        out.template += f[i]
        continue
      }
      const spec = FIXED[f[i + 1] ?? '']
      i++
      if (spec === undefined) return false
      if (typeof spec === 'string') {
        if (depth > 2 || !walk(spec, depth + 1)) return false
        continue
      }
      out.fields.push({ component: spec[0], offset: out.length, width: spec[1] })
      out.length += spec[1]
      out.template += '0'.repeat(spec[1])
    }
    return true
  }
  if (!walk(format, 0)) return undefined
  const have = new Set(out.fields.map((x) => x.component))
  if (have.size !== out.fields.length) return undefined
  return ['year', 'month', 'day', 'hour', 'minute', 'second'].every((c) => have.has(c as 'year')) ? out : undefined
}
