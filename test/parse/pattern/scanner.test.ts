import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { compilePattern, emptyHeader, type LineParser } from '../../../src/parse/pattern/compile.js'
import { SCAN_BAD_TIME, SCAN_NONE } from '../../../src/parse/pattern/scanner.js'
import { builtinPatterns } from '../../../src/parse/patterns.js'
import { readFixture } from '../../helpers/fixtures.js'
import { renderPattern } from '../../helpers/render.js'

const CUSTOM = '%D{%Y-%m-%dT%H:%M:%S.%q%z} %h %c[%i]: %-5p %m\n' // scanner: no (%z is not fixed-width)
const SCANNABLE = [
  builtinPatterns()['kea-file']!.pattern,
  builtinPatterns()['kea-file-pre-1.7.7']!.pattern,
  builtinPatterns()['debian-systemd']!.pattern,
  '%d{%Y-%m-%dT%H:%M:%S.%q} %h %c[%i]: %-5p %m\n',
  '%D{%d/%m/%Y %H:%M:%S} |%20c| %-8p %i/%T [%t] %m\n'
]

/** What the regex path says about a line: 0 no header, else 2 (+4 for an unreadable date). */
function viaRegex (p: LineParser, line: string): { code: number, h: ReturnType<typeof emptyHeader> } {
  const h = emptyHeader()
  const m = p.full.exec(line)
  if (m === null) return { code: p.header.test(line) ? -1 : SCAN_NONE, h }
  return { code: p.extract(m, h) ? 2 : 2 | SCAN_BAD_TIME, h }
}

function viaScanner (p: LineParser, line: string): { code: number, h: ReturnType<typeof emptyHeader> } {
  const h = emptyHeader()
  return { code: p.scan!(line, h), h }
}

describe('header scanner', () => {
  it('is built for the fixed-width patterns and not for the others', () => {
    for (const pattern of SCANNABLE) expect(compilePattern(pattern).scan, pattern).toBeDefined()
    expect(compilePattern(builtinPatterns()['kea-syslog']!.pattern).scan).toBeUndefined() // %c then "." (in a logger name)
    expect(compilePattern(CUSTOM).scan).toBeUndefined()
    expect(compilePattern('%p %m [%c]').scan).toBeUndefined() // %m not last
  })

  it('agrees with the regex on every line of the real logs', () => {
    const lines = ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-2.2.0-dhcp6-DEBUG99-full.log.gz', 'kea-2.2.0-dhcp4-INFO-stdout.log']
      .flatMap((f) => readFixture(f).toString().split('\n'))
    for (const pattern of SCANNABLE) {
      const p = compilePattern(pattern, { timeZone: 'Europe/Berlin' })
      const q = compilePattern(pattern, { timeZone: 'Europe/Berlin' })
      for (const line of lines) {
        const a = viaRegex(p, line)
        const b = viaScanner(q, line)
        expect(b.code, `${pattern} ← ${line}`).toBe(a.code === -1 ? SCAN_NONE : a.code)
        if (b.code !== SCAN_NONE) expect(b.h).toEqual(a.h)
      }
    }
  })

  it('agrees with the regex on mutated lines', () => {
    const real = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString().split('\n').slice(0, 40)
    const debian = real.map((l) => l.slice(24).replace(/\[[^\]]*\] /, ''))
    const line = fc.tuple(fc.constantFrom(...real, ...debian), fc.nat(), fc.nat({ max: 6 }), fc.string({ maxLength: 4, unit: 'binary' }))
      .map(([l, at, del, ins]) => { const p = at % (l.length + 1); return l.slice(0, p) + ins + l.slice(p + del) })
    fc.assert(fc.property(line, fc.constantFrom(...SCANNABLE), (l, pattern) => {
      const p = compilePattern(pattern, { timeZone: 'UTC' })
      const a = viaRegex(p, l)
      const b = viaScanner(p, l)
      expect(b.code).toBe(a.code === -1 ? SCAN_NONE : a.code)
      if (b.code !== SCAN_NONE) expect(b.h).toEqual(a.h)
    }), { numRuns: 3000 })
  })

  it('agrees with the regex on rendered lines with stray spaces and cuts', () => {
    const rendered = fc.record({
      pattern: fc.constantFrom(...SCANNABLE),
      level: fc.constantFrom('FATAL', 'ERROR', 'WARN', 'INFO', 'DEBUG', 'INF', 'info'),
      logger: fc.stringMatching(/^kea-dhcp[46](\.[a-z-]{1,12}){0,2}$/),
      pid: fc.integer({ min: 1, max: 99999 }),
      thread: fc.oneof(fc.integer({ min: 1, max: 2 ** 47 }).map(String), fc.stringMatching(/^[a-z0-9.:]{1,10}$/)),
      time: fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2090-01-01T00:00:00Z'), noInvalidDate: true }),
      message: fc.stringMatching(/^[A-Z][A-Z0-9_]{1,20}( [ -~]{0,30})?$/),
      at: fc.nat(),
      spaces: fc.integer({ min: 0, max: 12 }),
      cut: fc.nat({ max: 2 })
    }).map((r) => {
      const line = renderPattern(r.pattern, { time: r.time, level: r.level, logger: r.logger, pid: r.pid, thread: r.thread, tid: r.pid, host: 'h', message: r.message }).replace(/\n$/, '')
      const p = r.at % (line.length + 1)
      return { pattern: r.pattern, line: line.slice(0, p) + ' '.repeat(r.spaces) + line.slice(p + r.cut) }
    })
    let headers = 0
    fc.assert(fc.property(rendered, ({ pattern, line }) => {
      const p = compilePattern(pattern, { timeZone: 'UTC' })
      const a = viaRegex(p, line)
      const b = viaScanner(p, line)
      expect(b.code, `${pattern} ← ${JSON.stringify(line)}`).toBe(a.code === -1 ? SCAN_NONE : a.code)
      if (b.code !== SCAN_NONE) { headers++; expect(b.h).toEqual(a.h) }
    }), { numRuns: 5000 })
    // The property saw real headers, not only rejects. About a fifth of the generated lines keep a
    // header (four random runs: 999, 1,024, 1,047, 1,066 of 5,000): a bound of 1,000 failed a CI
    // run at 999, and one in four here.
    expect(headers).toBeGreaterThan(500)
  })
})
