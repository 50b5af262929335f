import { PatternSyntaxError, PatternUnsupportedError } from '../../errors.js'

/** A run of literal text in a log4cplus pattern. */
export interface LiteralToken {
  kind: 'literal'
  text: string
  pos: number
}

/** One `%[-][min][.[-]max]X[{option}]` conversion. */
export interface ConversionToken {
  kind: 'conversion'
  char: string
  option: string | undefined
  /** `-` flag: value first, padding after it. */
  leftAlign: boolean
  minWidth: number | undefined
  maxWidth: number | undefined
  /** `.-N` (log4cplus ≥ 2.0): truncation keeps the start instead of the end. */
  truncateEnd: boolean
  pos: number
  /** The conversion exactly as written, for error messages. */
  source: string
}

export type PatternToken = LiteralToken | ConversionToken

// The conversion characters log4cplus 2.0.x understands (patternlayout.cxx finalizeConverter).
// log4cplus itself turns anything else into literal text after a LogLog complaint; keatrail
// refuses instead, because a silently literal `%k` would make every line unmatched.
const KNOWN = new Set(['b', 'c', 'd', 'D', 'E', 'F', 'h', 'H', 'i', 'l', 'L', 'm', 'M', 'n', 'p', 'r', 't', 'T', 'x', 'X'])
const TAKES_OPTION = new Set(['c', 'd', 'D', 'E', 'X'])

export function tokenizePattern (pattern: string): PatternToken[] {
  const tokens: PatternToken[] = []
  let literal = ''
  let literalPos = 0
  const flushLiteral = (): void => {
    if (literal.length > 0) tokens.push({ kind: 'literal', text: literal, pos: literalPos })
    literal = ''
  }
  let i = 0
  while (i < pattern.length) {
    const ch = pattern[i] as string
    if (ch !== '%') {
      if (literal.length === 0) literalPos = i
      literal += ch
      i++
      continue
    }
    const start = i
    i++
    if (i >= pattern.length) {
      // A lone trailing '%' is literal text in log4cplus.
      if (literal.length === 0) literalPos = start
      literal += '%'
      break
    }
    if (pattern[i] === '%') {
      if (literal.length === 0) literalPos = start
      literal += '%'
      i++
      continue
    }
    let leftAlign = false
    let minWidth: number | undefined
    let maxWidth: number | undefined
    let truncateEnd = false
    if (pattern[i] === '-') { leftAlign = true; i++ }
    let digits = ''
    while (i < pattern.length && /[0-9]/.test(pattern[i] as string)) digits += pattern[i++]
    if (digits) minWidth = Number(digits)
    if (pattern[i] === '.') {
      i++
      if (pattern[i] === '-') { truncateEnd = true; i++ }
      digits = ''
      while (i < pattern.length && /[0-9]/.test(pattern[i] as string)) digits += pattern[i++]
      if (!digits) throw new PatternSyntaxError(JSON.stringify(pattern), start, 'a number must follow "." in a format modifier')
      maxWidth = Number(digits)
    }
    const char = pattern[i]
    if (char === undefined) throw new PatternSyntaxError(JSON.stringify(pattern), start, 'the pattern ends inside a conversion')
    if (!KNOWN.has(char)) {
      throw new PatternUnsupportedError(JSON.stringify(pattern.slice(start, i + 1)), JSON.stringify(pattern), start,
        `"%${char}" is not a log4cplus conversion character`)
    }
    i++
    let option: string | undefined
    if (pattern[i] === '{' && TAKES_OPTION.has(char)) {
      const close = pattern.indexOf('}', i)
      if (close < 0) throw new PatternSyntaxError(JSON.stringify(pattern), i, 'unterminated "{" option')
      option = pattern.slice(i + 1, close)
      i = close + 1
    }
    flushLiteral()
    tokens.push({ kind: 'conversion', char, option, leftAlign, minWidth, maxWidth, truncateEnd, pos: start, source: pattern.slice(start, i) })
  }
  flushLiteral()
  return tokens
}
