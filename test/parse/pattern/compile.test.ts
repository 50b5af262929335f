import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { compilePattern, emptyHeader } from '../../../src/parse/pattern/compile.js'
import { tokenizePattern } from '../../../src/parse/pattern/tokenize.js'
import { builtinPatterns, resolvePattern } from '../../../src/parse/patterns.js'
import { renderPattern } from '../../helpers/render.js'
import { readFixture } from '../../helpers/fixtures.js'

function parseLine (pattern: string, line: string, tz = 'UTC') {
  const p = compilePattern(pattern, { timeZone: tz })
  const m = p.full.exec(line)
  if (m === null) return undefined
  const h = emptyHeader()
  expect(p.extract(m, h)).toBe(true)
  return h
}

describe('tokenizePattern', () => {
  it('reads modifiers the way log4cplus does', () => {
    const [p, , c, , m] = tokenizePattern('%-5p %20.30c %.-12m')
    expect(p).toMatchObject({ kind: 'conversion', char: 'p', leftAlign: true, minWidth: 5 })
    expect(c).toMatchObject({ char: 'c', leftAlign: false, minWidth: 20, maxWidth: 30, truncateEnd: false })
    expect(m).toMatchObject({ char: 'm', maxWidth: 12, truncateEnd: true })
  })

  it('treats %% and a trailing % as literal text', () => {
    expect(tokenizePattern('100%% %m %')).toEqual([
      { kind: 'literal', text: '100% ', pos: 0 },
      expect.objectContaining({ char: 'm' }),
      { kind: 'literal', text: ' %', pos: 8 }
    ])
  })

  it('rejects an unknown conversion with its code and position', () => {
    expect(() => tokenizePattern('%d %k %m')).toThrow(expect.objectContaining({
      code: 'KEATRAIL_ERR_PATTERN_UNSUPPORTED',
      message: expect.stringContaining('position 3')
    }))
  })

  it('rejects an unterminated option', () => {
    expect(() => tokenizePattern('%d{%Y %m')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_PATTERN_SYNTAX' }))
  })
})

describe('compilePattern', () => {
  it('parses Kea\'s default file pattern', () => {
    const h = parseLine(builtinPatterns()['kea-file']!.pattern,
      '2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/15928.140567963111936] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[00:63:6c:69:65:6e:74:2d:41], tid=0x7f74d74a: lease 192.0.2.10 has been allocated for 40 seconds')
    expect(h).toMatchObject({
      time: Date.UTC(2026, 10, 24, 9, 16, 16, 851),
      level: 'INFO',
      logger: 'kea-dhcp4.leases',
      pid: 15928,
      thread: 140567963111936
    })
    expect(h?.message).toMatch(/^DHCP4_LEASE_ALLOC \[hwtype=1/)
  })

  it('parses the syslog payload, taking the thread id from the last dot', () => {
    const h = parseLine(builtinPatterns()['kea-syslog']!.pattern,
      'WARN  [kea-dhcp4.dhcp4.139952574804480] DHCP4_MULTI_THREADING_INFO enabled: no, number of threads: 0, queue size: 0')
    expect(h).toMatchObject({ level: 'WARN', logger: 'kea-dhcp4.dhcp4', thread: 139952574804480, time: undefined })
  })

  it('parses the pre-1.7.7 defaults', () => {
    expect(parseLine(builtinPatterns()['kea-file-pre-1.7.7']!.pattern,
      '2019-08-05 14:27:45.871 DEBUG [kea-dhcp4.dhcpsrv/8475] DHCPSRV_TIMERMGR_START_TIMER starting timer: reclaim-expired-leases'))
      .toMatchObject({ pid: 8475, logger: 'kea-dhcp4.dhcpsrv', thread: undefined })
    expect(parseLine(builtinPatterns()['kea-syslog-pre-1.7.7']!.pattern, 'ERROR [kea-dhcp6.dhcp6] DHCP6_X text'))
      .toMatchObject({ level: 'ERROR', logger: 'kea-dhcp6.dhcp6' })
  })

  it('reads every specifier of the live all-specifiers capture, preferring full values', () => {
    const pattern = 'd=[%d] D=[%D] D{q}=[%D{%Y-%m-%dT%H:%M:%S.%q%z}] D{Q}=[%D{%H:%M:%S.%Q}] D{s}=[%D{%s}] p=[%p] -5p=[%-5p] c=[%c] c{1}=[%c{1}] .10c=[%.10c] 20c=[%20c] i=[%i] t=[%t] T=[%T] h=[%h] H=[%H] r=[%r] b=[%b] F=[%F] L=[%L] l=[%l] M=[%M] x=[%x] X=[%X] E=[%E{RS_TEST_ENV}] .-12m=[%.-12m] m=[%m]%n'
    const lines = readFixture('kea-2.2.0-all-pattern-specifiers.txt').toString().split('\n').filter(Boolean)
    const p = compilePattern(pattern, { timeZone: 'UTC' })
    // The capture's second line was cut off mid-message (no closing "]"): only its header matches.
    const full = lines.filter((l) => p.full.test(l))
    expect(full).toHaveLength(lines.length - 1)
    expect(lines.every((l) => p.header.test(l))).toBe(true)
    const h = parseLine(pattern, lines[0]!)!
    expect(h).toMatchObject({ level: 'DEBUG', logger: 'kea-dhcp4.dhcp4', pid: 17941, thread: 140194454172160, threadAlt: 17941, host: 'vm' })
    // %D{%s} gives the second; %q and %Q add the fraction, %Q down to the microsecond.
    expect(h.time).toBe(Date.UTC(2026, 10, 24, 9, 22, 41, 77))
    expect(h.micros).toBe(103)
    expect(h.message).toMatch(/^DHCP4_CONFIG_RECEIVED received configuration \{/)
    expect(h.messageTruncated).toBe(false)
  })

  it('handles padding, truncation from the start and from the end', () => {
    expect(parseLine('%20c|%.5c|%.-1p|%m', '     kea-dhcp4.dhcp4|dhcp4|I|X_Y z')).toMatchObject({ logger: 'kea-dhcp4.dhcp4', level: 'INFO', message: 'X_Y z' })
    expect(parseLine('%.-1p %m', 'I X_Y z')?.message).toBe('X_Y z')
  })

  it('marks a message that only appears truncated', () => {
    expect(parseLine('%p %.-8m', 'INFO DHCP4_LE')?.messageTruncated).toBe(true)
  })

  it('applies an explicit %z offset', () => {
    expect(parseLine('%D{%Y-%m-%dT%H:%M:%S.%q%z} %m', '2026-03-29T03:30:00.000+0200 A_B x', 'Europe/Berlin')?.time)
      .toBe(Date.UTC(2026, 2, 29, 1, 30))
  })

  it('rejects a garbled date instead of inventing one', () => {
    const p = compilePattern('%d{%Y-%m-%d %H:%M:%S} %m')
    const m = p.full.exec('2026-13-45 99:00:00 A_B x')!
    expect(p.extract(m, emptyHeader())).toBe(false)
  })

  it('fails at start on unsupported constructs, naming them', () => {
    expect(() => compilePattern('%d{%Y %Ez} %m')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_STRFTIME_UNSUPPORTED' }))
    expect(() => compilePattern('%p%n%m')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_PATTERN_UNSUPPORTED', message: expect.stringContaining('"%n"') }))
    expect(() => compilePattern('%.5d %m')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_PATTERN_UNSUPPORTED' }))
  })

  it('refuses a pattern without %m: it could match no Kea record', () => {
    for (const pattern of ['%', '%d{%Y-%m-%d %H:%M:%S}', '%-5p [%c]', 'kea-file %%m']) {
      expect(() => compilePattern(pattern)).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_PATTERN_SYNTAX', message: expect.stringContaining('no %m') }))
    }
  })

  it('tells a mistyped built-in name from a pattern: text without % is a name', () => {
    expect(() => resolvePattern('kea-sylog')).toThrow(expect.objectContaining({
      code: 'KEATRAIL_ERR_PATTERN_UNKNOWN',
      message: expect.stringContaining('kea-file, kea-syslog, kea-file-pre-1.7.7, kea-syslog-pre-1.7.7, debian-systemd')
    }))
    expect(resolvePattern('kea-syslog')).toBe(builtinPatterns()['kea-syslog']!.pattern)
    expect(resolvePattern('%p %m%n')).toBe('%p %m%n')
  })

  it('round-trips random valid patterns rendered with random values', () => {
    const level = fc.constantFrom('FATAL', 'ERROR', 'WARN', 'INFO', 'DEBUG')
    const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/)
    const logger = fc.array(word, { minLength: 1, maxLength: 3 }).map((w) => ['kea-dhcp4', ...w].join('.'))
    const message = fc.tuple(fc.stringMatching(/^[A-Z][A-Z0-9_]{2,30}$/), fc.string({ maxLength: 80 }).map((s) => s.replace(/[\n\r]/g, ' ')))
      .map(([id, text]) => `${id} ${text}`)
    const dateFmt = fc.constantFrom('%Y-%m-%d %H:%M:%S.%q', '%Y-%m-%dT%H:%M:%S.%q%z', '%s', '%b %e %H:%M:%S %Y', '%F %T', '%d/%m/%y %H:%M:%S.%Q')
    const sep = fc.constantFrom(' ', ' | ', ': ', ' [', '] ', ' - ', ',')
    const mod = fc.constantFrom('', '-5', '8', '-20', '10')
    const piece = fc.oneof(
      fc.tuple(mod, level).map(([m]) => `%${m}p`),
      fc.tuple(mod).map(([m]) => `%${m}c`),
      fc.constant('%c{1}'),
      fc.constant('%i'),
      fc.constant('%t'),
      fc.constant('%T'),
      fc.constant('%h'),
      dateFmt.map((f) => `%d{${f}}`)
    )
    fc.assert(fc.property(
      fc.array(fc.tuple(piece, sep), { minLength: 1, maxLength: 6 }),
      level, logger, message,
      fc.integer({ min: 1, max: 4_000_000 }), fc.integer({ min: 1, max: 2 ** 47 }),
      fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }),
      fc.integer({ min: 0, max: 999 }),
      (pieces, lvl, lg, msg, pid, thread, time, micros) => {
        const pattern = pieces.map(([p, s]) => p + s).join('') + '%m%n'
        const line = renderPattern(pattern, { time, level: lvl, logger: lg, pid, thread: String(thread), tid: pid, host: 'kea-a', message: msg }, micros)
        const h = parseLine(pattern, line.replace(/\n$/, ''))
        expect(h, `${pattern} → ${line}`).toBeDefined()
        expect(h!.message).toBe(msg)
        if (pattern.includes('%-5p') || pattern.includes('%5p') || /%(8|10|-20)?p/.test(pattern)) expect(h!.level).toBe(lvl)
        if (/%(-5|8|-20|10)?c(?!\{)/.test(pattern)) expect(h!.logger).toBe(lg)
        if (pattern.includes('%i')) expect(h!.pid).toBe(pid)
        if (pattern.includes('%t')) expect(h!.thread).toBe(thread)
        if (pattern.includes('%d{')) {
          const secondsOnly = !/%q|%Q/.test(pattern)
          const expected = secondsOnly ? Math.floor(time.getTime() / 1000) * 1000 : time.getTime()
          expect(h!.time).toBe(expected)
        }
      }
    ), { numRuns: 400 })
  })
})
