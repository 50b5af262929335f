import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FIELDS } from '../../src/query/fields.js'
import { parseQuery, printQuery, type QueryNode } from '../../src/query/parse.js'

describe('query language', () => {
  it('parses fields, aliases, phrases, prefixes, ranges, CIDRs and boolean structure', () => {
    expect(parseQuery('mac:02:00:00:00:00:0a')).toEqual({ type: 'term', field: 'client.mac', value: '02-00-00-00-00-0A' })
    expect(parseQuery('duid:00-03-00-01-02-00-00-00-06-0A')).toEqual({ type: 'term', field: 'kea.duid', value: '00:03:00:01:02:00:00:00:06:0a' })
    expect(parseQuery('msg:"was released properly"')).toEqual({ type: 'text', value: 'was released properly', phrase: true })
    expect(parseQuery('code:DHCP4_LEASE_*')).toEqual({ type: 'prefix', field: 'event.code', value: 'DHCP4_LEASE_' })
    expect(parseQuery('subnet_id >= 2')).toEqual({ type: 'range', field: 'kea.subnet_id', op: '>=', value: '2' })
    expect(parseQuery('time<2026-11-24T05:16:00+01:00')).toEqual({ type: 'range', field: '@timestamp', op: '<', value: '2026-11-24T04:16:00.000Z' })
    expect(parseQuery('ip:192.0.2.0/24')).toEqual({ type: 'cidr', field: 'related.ip', value: '192.0.2.0/24' })
    expect(parseQuery('ip:2001:DB8::1')).toEqual({ type: 'term', field: 'related.ip', value: '2001:db8::1' })
    expect(parseQuery('declined NOT host:kea-b')).toEqual({ type: 'and', children: [{ type: 'text', value: 'declined', phrase: false }, { type: 'not', child: { type: 'term', field: 'host.name', value: 'kea-b' } }] })
    expect(parseQuery('(level:error OR level:WARN) AND 02:00:00:00:00:0a')).toEqual({
      type: 'and',
      children: [
        { type: 'or', children: [{ type: 'term', field: 'log.level', value: 'error' }, { type: 'term', field: 'log.level', value: 'warn' }] },
        { type: 'text', value: '02:00:00:00:00:0a', phrase: false }
      ]
    })
    expect(parseQuery('   ')).toBeUndefined()
  })

  const errors: Array<[string, RegExp]> = [
    ['mca:02:00:00:00:00:0a', /position 0: expected a known field, not "mca"/],
    ['mac:', /position 4: expected a value right after mac:/],
    ['(a OR b', /position 7: expected a closing \)/],
    ["') OR 1=1 --", /position 0: .*phrases take double quotes/],
    ['{"script":{"source":"x"}}', /position 0: .*not "\{"/],
    ['"unterminated', /position 0: expected a closing "/],
    ['level >= 3', /a field that has an order/],
    ['ip:999.1.1.1', /an IPv4\/IPv6 address or CIDR/],
    ['subnet_id:abc', /a whole number/],
    ['mac:zz', /a valid client.mac/],
    ['a AND', /expected a search term/],
    ['OR b', /a search term before OR/],
    ['x'.repeat(10_000), /at most 4096 characters/],
    ['bad\uFFFDutf8', /valid UTF-8/],
    ['msg:"lease\u0000 x"', /position 10: expected a phrase without control characters/],
    ['"a\u0001b"', /without control characters/]
  ]
  for (const [q, msg] of errors) {
    it(`refuses ${JSON.stringify(q.slice(0, 30))} with the position and what was expected`, () => {
      expect(() => parseQuery(q)).toThrow(msg)
      try { parseQuery(q) } catch (err) { expect((err as { code: string, statusCode: number }).code).toBe('KEATRAIL_ERR_QUERY_SYNTAX'); expect((err as { statusCode: number }).statusCode).toBe(400) }
    })
  }

  // Issue 17: what one query may cost. Each of these parsed before and reached the store.
  const tooComplex: Array<[string, string, RegExp]> = [
    ['1,000 chained NOTs', 'NOT '.repeat(1000) + 'a', /at most 32 nested parentheses and NOTs/],
    ['NOTs count toward the depth with parentheses', '('.repeat(20) + 'NOT '.repeat(13) + 'a' + ')'.repeat(20), /at most 32 nested parentheses and NOTs/],
    ['40 nested parentheses', '('.repeat(40) + 'a' + ')'.repeat(40), /at most 32 nested parentheses/],
    ['33 terms', Array.from({ length: 33 }, (_, i) => `ip:10.${i}.0.0/16`).join(' OR '), /at most 32 terms/],
    ['a 257-character phrase', `"${'a'.repeat(257)}"`, /at most 256 characters/],
    ['a 17-word phrase', `msg:"${Array.from({ length: 17 }, (_, i) => `w${i}`).join(' ')}"`, /at most 16 words/],
    ['a bare word full text splits into 17 words', Array.from({ length: 17 }, () => 'a').join('.'), /at most 16 words/]
  ]
  for (const [name, q, msg] of tooComplex) {
    it(`refuses ${name} with KEATRAIL_ERR_QUERY_TOO_COMPLEX (400)`, () => {
      expect(() => parseQuery(q)).toThrow(msg)
      try { parseQuery(q) } catch (err) { expect((err as { code: string }).code).toBe('KEATRAIL_ERR_QUERY_TOO_COMPLEX'); expect((err as { statusCode: number }).statusCode).toBe(400) }
    })
  }

  it('accepts what is inside the bounds: 32 terms, 32 levels counting NOTs, a 16-word phrase', () => {
    expect(parseQuery(Array.from({ length: 32 }, (_, i) => `ip:10.${i}.0.0/16`).join(' OR '))).toMatchObject({ type: 'or' })
    expect(parseQuery('('.repeat(16) + 'NOT '.repeat(16) + 'a' + ')'.repeat(16))).toMatchObject({ type: 'not' })
    expect(parseQuery(`"${Array.from({ length: 16 }, (_, i) => `w${i}`).join(' ')}"`)).toMatchObject({ type: 'text', phrase: true })
    expect(parseQuery('"tab\tand newline\n are whitespace"')).toMatchObject({ type: 'text' })
  })

  it('does not echo control characters in the error message', () => {
    expect(() => parseQuery('"a\u0000b')).toThrow(/in "a\?b\)/)
  })

  // Random ASTs with values each field accepts, in their stored form.
  const word = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,8}$/).filter((w) => !['AND', 'OR', 'NOT'].includes(w))
  const leaf: fc.Arbitrary<QueryNode> = fc.oneof(
    fc.record({ type: fc.constant('text' as const), value: word, phrase: fc.boolean() }),
    fc.record({ type: fc.constant('text' as const), value: fc.array(word, { minLength: 2, maxLength: 3 }).map((w) => w.join(' ')), phrase: fc.constant(true) }),
    fc.record({ type: fc.constant('term' as const), field: fc.constantFrom('event.code', 'host.name', 'event.action'), value: word }),
    fc.record({ type: fc.constant('term' as const), field: fc.constant('client.mac'), value: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join('-')) }),
    fc.record({ type: fc.constant('term' as const), field: fc.constant('kea.subnet_id'), value: fc.nat(5000).map(String) }),
    fc.record({ type: fc.constant('prefix' as const), field: fc.constantFrom('event.code', 'host.name'), value: word }),
    fc.record({ type: fc.constant('range' as const), field: fc.constant('kea.subnet_id'), op: fc.constantFrom('>' as const, '>=' as const, '<' as const, '<=' as const), value: fc.nat(5000).map(String) }),
    fc.record({ type: fc.constant('cidr' as const), field: fc.constant('related.ip'), value: fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 8, max: 24 })).map(([a, l]) => `${a}.0.0.0/${l}`) })
  )
  const tree: fc.Arbitrary<QueryNode> = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('and'), tie('or'), tie('not')),
    and: fc.record({ type: fc.constant('and' as const), children: fc.array(tie('node'), { minLength: 2, maxLength: 3 }) }),
    or: fc.record({ type: fc.constant('or' as const), children: fc.array(tie('node'), { minLength: 2, maxLength: 3 }) }),
    not: fc.record({ type: fc.constant('not' as const), child: tie('node') })
  })).node as fc.Arbitrary<QueryNode>

  /** Nested AND in AND (and OR in OR) prints flat: compare flattened forms. */
  function flat (n: QueryNode): QueryNode {
    if (n.type === 'and' || n.type === 'or') return { type: n.type, children: n.children.map(flat).flatMap((c) => c.type === n.type ? c.children : [c]) }
    if (n.type === 'not') return { type: 'not', child: flat(n.child) }
    return n
  }

  it('random ASTs print to text that parses back to the same AST', () => {
    fc.assert(fc.property(tree, (ast) => {
      expect(flat(parseQuery(printQuery(ast)) as QueryNode)).toEqual(flat(ast))
    }), { numRuns: 500 })
  })

  it('random input never crashes the parser and never yields a field outside the allow-list', () => {
    const fields = (n: QueryNode): string[] => n.type === 'and' || n.type === 'or' ? n.children.flatMap(fields) : n.type === 'not' ? fields(n.child) : 'field' in n ? [n.field] : []
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.stringMatching(/^[a-z_:. ()"<>=*0-9-]{0,60}$/)), (q) => {
      let ast: QueryNode | undefined
      try { ast = parseQuery(q) } catch (err) {
        expect((err as { code?: string }).code).toMatch(/^KEATRAIL_ERR_QUERY_(SYNTAX|TOO_COMPLEX)$/)
        return
      }
      if (ast !== undefined) for (const f of fields(ast)) expect(FIELDS[f]).toBeDefined()
    }), { numRuns: 3000 })
  })
})
