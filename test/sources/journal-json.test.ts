import { describe, expect, it } from 'vitest'
import { messageBytes, readJsonPrefix } from '../../src/sources/journal/entry.js'

// The journal source's reading of journalctl's JSON values, alone: each shape MESSAGE comes in,
// and the start of a line cut at its bound. Through real journalctl: journal-entries.test.ts.

describe('MESSAGE values (messageBytes)', () => {
  it('takes each shape journalctl prints: a string, an array of byte numbers, an array of values', () => {
    expect(messageBytes('INFO  DHCP4_X é')).toEqual(Buffer.from('INFO  DHCP4_X é'))
    expect(messageBytes([0x49, 0xff, 0x0a, 0x42])).toEqual(Buffer.from([0x49, 0xff, 0x0a, 0x42]))
    expect(messageBytes(['a', 'b'])).toEqual(Buffer.from('a\nb'))
    expect(messageBytes(['a', [0xff, 0x41], 'c'])).toEqual(Buffer.from([0x61, 0x0a, 0xff, 0x41, 0x0a, 0x63]))
    expect(messageBytes([[0xff], [0xfe]])).toEqual(Buffer.from([0xff, 0x0a, 0xfe]))
    expect(messageBytes([])).toEqual(Buffer.alloc(0))
    expect(messageBytes(null)).toBeUndefined()
    expect(messageBytes(undefined)).toBeUndefined()
  })

  it('keeps a value of another shape as its JSON text instead of losing it', () => {
    expect(messageBytes({ a: 1 })).toEqual(Buffer.from('{"a":1}'))
    expect(messageBytes(42)).toEqual(Buffer.from('42'))
    expect(messageBytes([1, 'a'])).toEqual(Buffer.from('1\na'))
    expect(messageBytes([300])).toEqual(Buffer.from('300'))
  })
})

describe('the start of a cut JSON line (readJsonPrefix)', () => {
  it('keeps the fields before the cut and what of the cut value can be read', () => {
    expect(readJsonPrefix('{"__CURSOR":"c","MESSAGE":"INFO  DHCP4_X ab')).toEqual({ fields: { __CURSOR: 'c', MESSAGE: 'INFO  DHCP4_X ab' }, cut: 'MESSAGE' })
    // Cut in an escape: the escape is left out, not misread.
    expect(readJsonPrefix('{"MESSAGE":"a\\nb\\u00')).toEqual({ fields: { MESSAGE: 'a\nb' }, cut: 'MESSAGE' })
    expect(readJsonPrefix('{"MESSAGE":"a\\\\')).toEqual({ fields: { MESSAGE: 'a\\' }, cut: 'MESSAGE' })
    // Cut in a number: 25 may have been 255, so it is left out.
    expect(readJsonPrefix('{"MESSAGE":[255,65,25')).toEqual({ fields: { MESSAGE: [255, 65] }, cut: 'MESSAGE' })
    expect(readJsonPrefix('{"MESSAGE":["one",[255,6')).toEqual({ fields: { MESSAGE: ['one', [255]] }, cut: 'MESSAGE' })
    expect(readJsonPrefix('{"MESSAGE":"whole","_PID":"12')).toEqual({ fields: { MESSAGE: 'whole', _PID: '12' }, cut: '_PID' })
    expect(readJsonPrefix('{"MESSAGE":"whole","_PI')).toEqual({ fields: { MESSAGE: 'whole' } })
    expect(readJsonPrefix('{"A":null,"B":tr')).toEqual({ fields: { A: null } })
  })
})
