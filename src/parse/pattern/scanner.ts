import { isEventTime } from '../time/iso.js'
import type { FixedLayout } from '../time/strftime.js'
import type { LocalTimeResolver } from '../time/zone.js'
import type { HeaderFields } from './compile.js'
import type { ConversionToken, PatternToken } from './tokenize.js'

/** scan() result: the record's header (everything before %m) was not recognised. */
export const SCAN_NONE = 0
/** The whole pattern matched (for %m-last patterns the header implies it). */
export const SCAN_FULL = 2
/** Added to SCAN_FULL when the date text matched but names no real time (month 13…). */
export const SCAN_BAD_TIME = 4

/**
 * Reads a header by character positions, no regex. Fills `out` and returns SCAN_* bits;
 * `out.message` is the text from where %m starts.
 */
export type Scanner = (text: string, out: HeaderFields) => number

type Step =
  | { kind: 'literal', text: string }
  | { kind: 'date', layout: FixedLayout, local: boolean }
  | { kind: 'run', field: 'level' | 'logger' | 'pid' | 'thread' | 'threadAlt' | 'host', leftPad: boolean, rightPad: boolean, charClass: (c: number) => boolean }
  | { kind: 'message' }

const isUpper = (c: number): boolean => c >= 65 && c <= 90
const isDigit = (c: number): boolean => c >= 48 && c <= 57
const isLoggerChar = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 95 || c === 46 || c === 45
// Exactly JavaScript's \s, so the scanner agrees with the regex on every input.
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
const isThreadChar = (c: number): boolean => !isSpace(c) && c !== 93 && c !== 41 && c !== 46 && !Number.isNaN(c)
const isHostChar = (c: number): boolean => !isSpace(c) && !Number.isNaN(c)

/**
 * Builds a scanner equivalent to the compiled regex for the patterns it supports, or returns
 * undefined (the regex path is used then). Supported: literal text, fixed-width dates, %p %c
 * %i %t %T %h %H without truncation, each followed by literal text whose first character the
 * field cannot contain, and %m as the last conversion.
 *
 * NOTE: regex and scanner must agree on every input; test/parse/pattern/scanner.test.ts checks
 * it on real logs and on fuzzed lines. bench/parse: the scanner halves the header cost.
 */
export function buildScanner (
  tokens: PatternToken[],
  layouts: Array<FixedLayout | undefined>,
  resolver: LocalTimeResolver | undefined
): Scanner | undefined {
  const steps: Step[] = []
  let dateIndex = 0
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i] as PatternToken
    if (tok.kind === 'literal') {
      steps.push({ kind: 'literal', text: tok.text })
      continue
    }
    if (tok.maxWidth !== undefined) return undefined
    const next = tokens[i + 1]
    const nextChar = next?.kind === 'literal' ? next.text.charCodeAt(0) : Number.NaN
    switch (tok.char) {
      case 'd':
      case 'D': {
        const layout = layouts[dateIndex++]
        if (layout === undefined || tok.minWidth !== undefined || dateIndex > 1) return undefined
        steps.push({ kind: 'date', layout, local: tok.char === 'D' })
        break
      }
      case 'm':
        if (i !== tokens.length - 1 || tok.minWidth !== undefined) return undefined
        steps.push({ kind: 'message' })
        break
      default: {
        const run = runStep(tok)
        if (run === undefined || next?.kind !== 'literal' || run.charClass(nextChar)) return undefined
        // Padding spaces before the next literal: it must not start with a space the field's
        // class could take (it cannot: no run class contains a space).
        steps.push(run)
      }
    }
  }
  if (steps[steps.length - 1]?.kind !== 'message') return undefined
  return compileSteps(steps, resolver)
}

function runStep (tok: ConversionToken): Extract<Step, { kind: 'run' }> | undefined {
  const pad = tok.minWidth !== undefined && tok.minWidth > 0
  const base = { kind: 'run' as const, leftPad: pad && !tok.leftAlign, rightPad: pad && tok.leftAlign }
  switch (tok.char) {
    case 'p': return { ...base, field: 'level', charClass: isUpper }
    case 'c': return { ...base, field: 'logger', charClass: isLoggerChar }
    case 'i': return { ...base, field: 'pid', charClass: isDigit }
    case 'T': return { ...base, field: 'threadAlt', charClass: isDigit }
    case 't': return { ...base, field: 'thread', charClass: isThreadChar }
    case 'h':
    case 'H': return { ...base, field: 'host', charClass: isHostChar }
    default: return undefined
  }
}

function leadingSpaces (s: string): number {
  let n = 0
  while (n < s.length && s.charCodeAt(n) === 32) n++
  return n
}

// Character-class tests as expressions over `c` (the same classes as the regex path).
const CLASS_SOURCE = new Map<(c: number) => boolean, string>([
  [isUpper, '(c >= 65 && c <= 90)'],
  [isDigit, '(c >= 48 && c <= 57)'],
  [isLoggerChar, '((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 46 || c === 45)'],
  [isThreadChar, '(c === c && c !== 93 && c !== 41 && c !== 46 && !isSpace(c))'],
  [isHostChar, '(c === c && !isSpace(c))']
])

/**
 * NOTE: generated straight-line code, like the extractor in compile.ts: an interpreted loop
 * over steps was slower than the regex (bench/parse). Only integers, character codes and
 * JSON-quoted pattern literals go into the source, never log text.
 */
function compileSteps (steps: Step[], resolver: LocalTimeResolver | undefined): Scanner {
  const code: string[] = [
    'out.time = undefined; out.micros = 0; out.level = undefined; out.logger = undefined; out.pid = undefined;',
    'out.thread = undefined; out.threadAlt = undefined; out.host = undefined; out.message = undefined; out.messageTruncated = false;',
    'let pos = 0, c = 0, start = 0, bad = 0;'
  ]
  steps.forEach((step, s) => {
    switch (step.kind) {
      case 'literal':
        if (step.text.length === 1) code.push(`if (text.charCodeAt(pos) !== ${step.text.charCodeAt(0)}) return 0; pos += 1;`)
        else code.push(`if (!text.startsWith(${JSON.stringify(step.text)}, pos)) return 0; pos += ${step.text.length};`)
        break
      case 'date': {
        const L = step.layout
        code.push(`if (text.length < pos + ${L.length}) return 0;`)
        const digitAt = new Set<number>()
        for (const f of L.fields) {
          const terms: string[] = []
          for (let k = 0; k < f.width; k++) {
            const at = f.offset + k
            digitAt.add(at)
            code.push(`c = text.charCodeAt(pos + ${at}) - 48; if (c < 0 || c > 9) return 0; const d${at} = c;`)
            terms.push(`d${at}`)
          }
          code.push(`const ${f.component} = ${terms.reduce((acc, t) => `(${acc} * 10 + ${t})`)};`)
        }
        for (let i = 0; i < L.length; i++) {
          if (!digitAt.has(i)) code.push(`if (text.charCodeAt(pos + ${i}) !== ${L.template.charCodeAt(i)}) return 0;`)
        }
        const millis = L.fields.some((f) => f.component === 'millis') ? 'millis' : '0'
        code.push(
          `pos += ${L.length};`,
          'const mo = month - 1;',
          'if (mo > 11 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) { bad = 4; } else {',
          '  const key = year * 416 + mo * 32 + day;',
          '  if (key !== cal.key) { cal.key = key; cal.ms = Date.UTC(year, mo, day); }',
          `  const wall = cal.ms + ((hour * 60 + minute) * 60 + second) * 1000 + ${millis};`,
          `  out.time = ${step.local && resolver !== undefined ? 'resolver.resolve(wall)' : 'wall'};`,
          // Year 0000 (Date.UTC reads it as 1900): a time no store holds.
          '  if (!isEventTime(out.time)) { out.time = undefined; bad = 4; }',
          '}'
        )
        break
      }
      case 'run': {
        const cls = CLASS_SOURCE.get(step.charClass) as string
        if (step.leftPad) code.push('while (text.charCodeAt(pos) === 32) pos++;')
        code.push(
          'start = pos;',
          `for (;;) { c = text.charCodeAt(pos); if (!${cls}) break; pos++; }`,
          'if (pos === start) return 0;'
        )
        const v = `v${s}`
        code.push(`const ${v} = text.slice(start, pos);`)
        if (step.rightPad) {
          const keep = leadingSpaces((steps[s + 1] as { text: string }).text)
          code.push(`{ let sp = 0; while (text.charCodeAt(pos + sp) === 32) sp++; if (sp < ${keep}) return 0; pos += sp - ${keep}; }`)
        }
        switch (step.field) {
          case 'level': code.push(`if (${v} !== 'INFO' && ${v} !== 'DEBUG' && ${v} !== 'WARN' && ${v} !== 'ERROR' && ${v} !== 'FATAL' && ${v} !== 'TRACE') return 0; out.level = ${v};`); break
          case 'logger': code.push(`out.logger = ${v};`); break
          case 'pid': code.push(`out.pid = +${v};`); break
          case 'threadAlt': code.push(`out.threadAlt = +${v};`); break
          case 'thread': code.push(`out.thread = DIGITS.test(${v}) ? +${v} : ${v};`); break
          case 'host': code.push(`out.host = ${v};`); break
        }
        break
      }
      case 'message':
        code.push('out.message = pos === 0 ? text : text.slice(pos);')
        break
    }
  })
  code.push('return 2 | bad;')
  // The source is built from integers, character codes and JSON-quoted pattern literals only.
  const factory = new Function('isSpace', 'DIGITS', 'resolver', 'cal', 'isEventTime', `return function scan (text, out) {\n${code.join('\n')}\n}`) as
    (isSpace: (c: number) => boolean, digits: RegExp, resolver: LocalTimeResolver | undefined, cal: { key: number, ms: number }, t: typeof isEventTime) => Scanner
  return factory(isSpace, /^\d{1,15}$/, resolver, { key: -1, ms: 0 }, isEventTime)
}
