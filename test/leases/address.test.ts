import { isIP } from 'node:net'
import { describe, expect, it } from 'vitest'
import { containingPrefixLos, duidLinkLayer, normalizeClientId, normalizeDuid, normalizeMac, parseAddress, parseAddressOrPrefix, parseTime } from '../../src/leases/address.js'

describe('addresses', () => {
  it('canonicalizes v4 and v6 (RFC 5952) and keys them as fixed-width hex', () => {
    expect(parseAddress('192.0.2.23')).toMatchObject({ text: '192.0.2.23', lo: '4:c0000217', hi: '4:c0000217' })
    expect(parseAddress('2001:DB8:0:0:0:0:0:1').text).toBe('2001:db8::1')
    expect(parseAddress('2001:db8::1').lo).toBe('6:20010db8000000000000000000000001')
    expect(parseAddress('::ffff:192.0.2.1').text).toBe('::ffff:c000:201')
    expect(parseAddressOrPrefix('2001:db8:8000:100::/56')).toMatchObject({ text: '2001:db8:8000:100::/56', length: 56, hi: '6:20010db8800001ffffffffffffffffff' })
  })
  it('an address lies inside a prefix exactly when its masked form is that prefix', () => {
    const a = parseAddress('2001:db8:8000:1ab::7')
    const p = parseAddressOrPrefix('2001:db8:8000:100::/56')
    expect(containingPrefixLos(a.lo)).toContain(p.lo)
    expect(containingPrefixLos(parseAddress('2001:db8:8000:200::1').lo)).not.toContain(p.lo)
  })
  it('rejects what is not an address with a clear message', () => {
    for (const bad of ['192.0.2.300', 'host.example', '2001:db8::g', '192.0.2.1/33', '']) expect(() => parseAddressOrPrefix(bad)).toThrow(/KEATRAIL_ERR_USAGE|not an IPv4|prefix length/)
    expect(() => parseAddress('2001:db8::/56')).toThrow(/is a prefix/)
  })
})

describe('addresses, against node:net and the WHATWG URL parser', () => {
  // Deterministic pseudo-random cases: plain addresses take a hand-written path, the rest the
  // general one; both must agree with independent parsers.
  let seed = 42
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  const v6Case = (): string => {
    const groups = Array.from({ length: 8 }, () => [0, 0, 1, 0xffff, rnd(0x10000)][rnd(5)] as number)
    let text = groups.map((g) => { const h = g.toString(16); return rnd(3) === 0 ? h.padStart(4, '0') : h }).join(':')
    if (rnd(2) === 0) text = text.toUpperCase()
    const from = rnd(8)
    const to = from + rnd(8 - from)
    if (to > from + 1) text = `${groups.slice(0, from).map((g) => g.toString(16)).join(':')}::${groups.slice(to).map((g) => g.toString(16)).join(':')}`
    return text
  }
  const hexOfV6 = (canonical: string): string => {
    const [head, tail] = canonical.split('::') as [string, string | undefined]
    const left = head === '' ? [] : head.split(':')
    const right = tail === undefined || tail === '' ? [] : tail.split(':')
    return [...left, ...Array<string>(tail === undefined ? 0 : 8 - left.length - right.length).fill('0'), ...right].map((g) => g.padStart(4, '0')).join('')
  }

  it('gives every valid address the text and key the independent parsers give', () => {
    for (let k = 0; k < 5000; k++) {
      const v4 = Array.from({ length: 4 }, () => [0, 1, 9, 10, 99, 100, 199, 200, 255, rnd(256)][rnd(10)] as number)
      const r4 = parseAddressOrPrefix(v4.join('.'))
      expect(r4).toEqual({ family: 4, text: v4.join('.'), length: 32, lo: `4:${v4.map((o) => o.toString(16).padStart(2, '0')).join('')}`, hi: r4.lo })
      const text = v6Case()
      const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1)
      const r6 = parseAddressOrPrefix(text)
      expect(r6, text).toEqual({ family: 6, text: canonical, length: 128, lo: `6:${hexOfV6(canonical)}`, hi: `6:${hexOfV6(canonical)}` })
      // As prefixes: the address with its host bits cleared (lo) or set (hi), in BigInt arithmetic.
      for (const [family, value, bits, len] of [[4, BigInt(`0x${r4.lo.slice(2)}`), 32, rnd(34)], [6, BigInt(`0x${hexOfV6(canonical)}`), 128, rnd(130)]] as const) {
        const input = `${family === 4 ? v4.join('.') : text}/${len}`
        if (len > bits) { expect(() => parseAddressOrPrefix(input), input).toThrow(/prefix length/); continue }
        const host = (1n << BigInt(bits - len)) - 1n
        const hex = (v: bigint): string => v.toString(16).padStart(bits / 4, '0')
        const lo = value & ~host
        const loText = family === 4
          ? [24, 16, 8, 0].map((shift) => Number((lo >> BigInt(shift)) & 255n)).join('.')
          : new URL(`http://[${hex(lo).match(/..../g)?.join(':') ?? ''}]/`).hostname.slice(1, -1)
        expect(parseAddressOrPrefix(input), input).toEqual({ family, text: len === bits ? loText : `${loText}/${len}`, length: len, lo: `${family}:${hex(lo)}`, hi: `${family}:${hex(lo | host)}` })
      }
    }
  })

  it('reads prefix lengths of one to three digits only', () => {
    for (const bad of ['192.0.2.0/0024', '2001:db8::/0056', '192.0.2.0/', '192.0.2.0/2a', '192.0.2.0/33', '::/129', '192.0.2.0/-1']) {
      expect(() => parseAddressOrPrefix(bad), bad).toThrow(/prefix length|not an IPv4/)
    }
    expect(parseAddressOrPrefix('192.0.2.7/0')).toEqual({ family: 4, text: '0.0.0.0/0', length: 0, lo: '4:00000000', hi: '4:ffffffff' })
    expect(parseAddressOrPrefix('2001:db8::/056')).toMatchObject({ text: '2001:db8::/56', length: 56 })
    expect(parseAddressOrPrefix('2001:db8::1/128')).toEqual(parseAddressOrPrefix('2001:db8::1'))
  })

  it('rejects exactly what node:net rejects', () => {
    const octets = ['0', '1', '00', '01', '001', '99', '255', '256', '1000', '', 'a', ' 1']
    const goodGroups = ['0', '1', '0000', 'ffff', 'FFFF', 'db8']
    const badGroups = ['00000', 'fffff', 'g', '', '1.2.3.4', '%eth0', '1 ', ':']
    const pieces = ['1', '0', '00', '01', '255', '256', 'ffff', 'fffff', 'g', ':', '::', '.', ' ', '%eth0', '1.2.3.4', 'db8']
    const pick = (list: string[]): string => list[rnd(list.length)] as string
    const v6Fuzz = (group: () => string): string => {
      const n = 1 + rnd(9)
      const list = Array.from({ length: n }, group)
      if (rnd(2) === 0) return list.join(':')
      const at = rnd(n + 1)
      return `${list.slice(0, at).join(':')}::${list.slice(at).join(':')}`
    }
    const edges = ['1:2:3:4:5:6:7:8:', '1::2::3', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7::', '::1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', '::', ':::', '1:',
      '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '0.0.0.0', '255.255.255.255', '1:2:3:4:5:6:7:8:9', '1::2:3:4:5:6:7:8', ' 1.2.3.4', '::ffff:1.2.3.4']
    let accepted = 0
    for (let k = -edges.length; k < 30000; k++) {
      const mode = rnd(3)
      const text = k < 0 ? edges[k + edges.length] as string : mode === 0
        ? Array.from({ length: 3 + rnd(3) }, () => pick(octets)).join('.')
        : mode === 1
          ? v6Fuzz(() => rnd(6) === 0 ? pick(badGroups) : pick(goodGroups))
          : Array.from({ length: 1 + rnd(9) }, () => pick(pieces)).join(pick([':', '', '.']))
      const valid = isIP(text.trim()) !== 0
      if (valid) accepted++
      if (valid) expect(() => parseAddressOrPrefix(text), text).not.toThrow()
      else expect(() => parseAddressOrPrefix(text), text).toThrow(/not an IPv4 or IPv6/)
    }
    expect(accepted).toBeGreaterThan(500)
  })
})

describe('client identifiers', () => {
  it('accepts any case, separator or none, and a leading hwtype', () => {
    for (const m of ['02:00:00:00:00:0a', '02-00-00-00-00-0A', '0200.0000.000a', '02000000000A', '01:02:00:00:00:00:0a', '2:0:0:0:0:a']) expect(normalizeMac(m)).toBe('02:00:00:00:00:0a')
    expect(normalizeDuid('00-03-00-01-02-00-00-00-06-0A')).toBe('00:03:00:01:02:00:00:00:06:0a')
    expect(normalizeClientId('01020000000A0B')).toBe('01:02:00:00:00:0a:0b')
  })
  it('rejects odd or non-hex input', () => {
    expect(() => normalizeMac('02:00:00:00:00:0g')).toThrow(/not a valid MAC/)
    expect(() => normalizeMac('0200000')).toThrow(/not a valid MAC/)
    expect(() => normalizeClientId('01')).toThrow(/client identifier/)
  })
  it('finds the link-layer address inside DUID-LLT and DUID-LL only', () => {
    expect(duidLinkLayer('00:03:00:01:02:00:00:00:06:0a')).toBe('02:00:00:00:06:0a')
    expect(duidLinkLayer('00:01:00:01:2c:5f:3a:1b:02:00:00:00:06:0a')).toBe('02:00:00:00:06:0a')
    expect(duidLinkLayer('00:02:00:00:09:bf:01')).toBeUndefined()
  })
})

describe('times', () => {
  it('takes RFC 3339 with an offset, or epoch ms; nothing ambiguous', () => {
    expect(parseTime('2026-11-24T04:16:00Z')).toBe(Date.parse('2026-11-24T04:16:00Z'))
    expect(parseTime('2026-11-24T05:16:00+01:00')).toBe(Date.parse('2026-11-24T04:16:00Z'))
    expect(parseTime('1795543347000')).toBe(1795543347000)
    expect(() => parseTime('2026-11-24 04:16')).toThrow(/offset/)
    expect(() => parseTime('last tuesday')).toThrow(/RFC 3339/)
  })
})
