import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LABEL_GROUPS, LABEL_SOURCE, parseLabel, type ClientLabel } from '../../../src/parse/kea/label.js'

// Kea's client labels in every form it writes (src/parse/kea/label.ts): random identifiers
// rendered the way Kea renders them must parse back to the same values, by the positional
// parser and by the regex the message rules embed; any other text must not throw.

const hex = (bytes: number[]): string => bytes.map((b) => b.toString(16).padStart(2, '0')).join(':')
const bytes = (min: number, max: number): fc.Arbitrary<number[]> => fc.array(fc.integer({ min: 0, max: 255 }), { minLength: min, maxLength: max })

const label = fc.record({
  form: fc.constantFrom('v4-packet', 'v4-lease', 'v6-old', 'v6-new', 'v6-lease'),
  hwtype: fc.integer({ min: 0, max: 65535 }),
  hwaddr: bytes(0, 20),
  noHw: fc.boolean(),
  clientId: fc.option(bytes(1, 40), { nil: undefined }),
  duid: bytes(1, 40),
  tid: fc.bigInt({ min: 0n, max: 2n ** 32n - 1n })
})

type Label = typeof label extends fc.Arbitrary<infer T> ? T : never

/** The text Kea writes, and what a parser must get out of it. */
function render (l: Label): { text: string, want: ClientLabel } {
  const hw = `[hwtype=${l.hwtype} ${hex(l.hwaddr)}]`
  const hwWant: ClientLabel = { hwtype: l.hwtype, ...(l.hwaddr.length > 0 ? { hwaddr: hex(l.hwaddr) } : {}) }
  const cid = l.clientId === undefined ? 'no info' : hex(l.clientId)
  const cidWant: ClientLabel = l.clientId === undefined ? {} : { clientId: hex(l.clientId) }
  const tid = `0x${l.tid.toString(16)}`
  switch (l.form) {
    case 'v4-packet': return { text: `${hw}, cid=[${cid}], tid=${tid}`, want: { ...hwWant, ...cidWant, transactionId: tid } }
    case 'v4-lease': return { text: `${hw}, cid=[${cid}]`, want: { ...hwWant, ...cidWant } }
    case 'v6-old': return { text: `duid=[${hex(l.duid)}], tid=${tid}`, want: { duid: hex(l.duid), transactionId: tid } }
    case 'v6-new': return l.noHw
      ? { text: `duid=[${hex(l.duid)}], [no hwaddr info], tid=${tid}`, want: { duid: hex(l.duid), transactionId: tid } }
      : { text: `duid=[${hex(l.duid)}], ${hw}, tid=${tid}`, want: { duid: hex(l.duid), ...hwWant, transactionId: tid } }
    case 'v6-lease': return { text: `duid=[${hex(l.duid)}], ${hw}`, want: { duid: hex(l.duid), ...hwWant } }
  }
  throw new Error(`unknown form ${String(l.form)}`)
}

const labelRegex = new RegExp(`^${LABEL_SOURCE}`)

function viaRegex (text: string): ClientLabel | undefined {
  const m = labelRegex.exec(text)
  if (m === null) return undefined
  const out: ClientLabel = {}
  LABEL_GROUPS.forEach((name, i) => {
    const v = m[i + 1]
    if (v === undefined || v === '' || v === 'no info') return
    if (name === 'hwtype') out.hwtype = Number(v)
    else if (name === 'hwaddr') out.hwaddr = v
    else if (name === 'client_id') out.clientId = v
    else if (name === 'duid') out.duid = v
    else out.transactionId = v
  })
  return out
}

describe('Kea client labels (property)', () => {
  it('every rendered label parses back to its values, followed by any message text', () => {
    fc.assert(fc.property(label, fc.constantFrom('', ': lease 192.0.2.10 has been allocated for 4000 seconds', ': DHCPREQUEST (type 3) received'), (l, rest) => {
      const { text, want } = render(l)
      const got: ClientLabel = {}
      expect(parseLabel(text + rest, got)).toBe(true)
      expect(got).toEqual(want)
      expect(viaRegex(text + rest)).toEqual(want)
    }), { numRuns: 2000 })
  })

  it('any other text never throws, and what it accepts starts like a label', () => {
    const noise = fc.oneof(
      fc.string({ maxLength: 80 }),
      label.chain((l) => fc.nat({ max: render(l).text.length }).map((cut) => render(l).text.slice(0, cut))),
      fc.string({ unit: fc.constantFrom('[', ']', ',', ' ', '=', 'd', 'u', 'i', 'c', 'h', 'w', 't', 'x', '0', 'a', ':'), maxLength: 40 })
    )
    fc.assert(fc.property(noise, (text) => {
      const out: ClientLabel = {}
      const ok = parseLabel(text, out)
      if (ok) expect(text.startsWith('duid=[') || text.startsWith('[')).toBe(true)
      else expect(out.transactionId).toBeUndefined()
    }), { numRuns: 3000 })
  })
})
