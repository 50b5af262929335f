import { tokenizePattern, type ConversionToken } from '../../src/parse/pattern/tokenize.js'

/** Values a log4cplus layout would have for one event. */
export interface RenderValues {
  time: Date
  level: string
  logger: string
  pid: number
  thread: string
  tid: number
  host: string
  message: string
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const p2 = (n: number): string => String(n).padStart(2, '0')

/** strftime in UTC for the codes the tests generate, plus log4cplus's %q %Q %s. */
export function strftimeUtc (fmt: string, d: Date, micros = 0): string {
  return fmt.replace(/%([a-zA-Z%])/g, (_, c: string) => {
    switch (c) {
      case 'Y': return String(d.getUTCFullYear())
      case 'y': return p2(d.getUTCFullYear() % 100)
      case 'm': return p2(d.getUTCMonth() + 1)
      case 'd': return p2(d.getUTCDate())
      case 'e': return String(d.getUTCDate()).padStart(2, ' ')
      case 'b': return MONTHS[d.getUTCMonth()] as string
      case 'H': return p2(d.getUTCHours())
      case 'M': return p2(d.getUTCMinutes())
      case 'S': return p2(d.getUTCSeconds())
      case 'T': return `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`
      case 'F': return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`
      case 'q': return String(d.getUTCMilliseconds()).padStart(3, '0')
      case 'Q': return String(d.getUTCMilliseconds()).padStart(3, '0') + '.' + String(micros).padStart(3, '0')
      case 's': return String(Math.floor(d.getTime() / 1000))
      case 'z': return '+0000'
      case '%': return '%'
      default: throw new Error('renderer lacks %' + c)
    }
  })
}

/** Applies log4cplus format modifiers (FormattingInfo::formatAndAppend). */
function format (tok: ConversionToken, value: string): string {
  let v = value
  if (tok.maxWidth !== undefined && v.length > tok.maxWidth) {
    v = tok.truncateEnd ? v.slice(0, tok.maxWidth) : v.slice(v.length - tok.maxWidth)
  }
  if (tok.minWidth !== undefined && v.length < tok.minWidth) {
    v = tok.leftAlign ? v.padEnd(tok.minWidth, ' ') : v.padStart(tok.minWidth, ' ')
  }
  return v
}

/** A small log4cplus PatternLayout: enough to render what the property tests generate. */
export function renderPattern (pattern: string, v: RenderValues, micros = 0): string {
  let out = ''
  for (const tok of tokenizePattern(pattern)) {
    if (tok.kind === 'literal') { out += tok.text; continue }
    let value: string
    switch (tok.char) {
      case 'd':
      case 'D': value = strftimeUtc(tok.option || '%Y-%m-%d %H:%M:%S', v.time, micros); break
      case 'p': value = v.level; break
      case 'c': {
        const n = tok.option ? Number(tok.option) : 0
        value = n > 0 ? v.logger.split('.').slice(-n).join('.') : v.logger
        break
      }
      case 'i': value = String(v.pid); break
      case 't': value = v.thread; break
      case 'T': value = String(v.tid); break
      case 'h':
      case 'H': value = v.host; break
      case 'm': value = v.message; break
      case 'n': value = '\n'; break
      default: throw new Error('renderer lacks %' + tok.char)
    }
    out += format(tok, value)
  }
  return out
}
