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
