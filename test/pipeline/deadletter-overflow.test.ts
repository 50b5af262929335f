import { describe, expect, it } from 'vitest'
import { deadLetterOverflow } from '../../src/app/service.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

describe('dead-letter overflow', () => {
  it('is logged at error level with how many were lost, once per overflow', async () => {
    const events = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))).events.slice(0, 5)
    const dlq = new DeadLetterStore(':memory:', 3)
    const lines: Array<{ code: string, fields?: Record<string, unknown> }> = []
    const check = deadLetterOverflow(dlq, { info: () => {}, error: (code, _msg, fields) => { lines.push({ code, ...(fields === undefined ? {} : { fields }) }) } })
    dlq.add('elasticsearch', events.slice(0, 3).map((event) => ({ event, reason: 'mapping' })))
    check()
    expect(lines).toEqual([])
    dlq.add('elasticsearch', events.slice(3).map((event) => ({ event, reason: 'mapping' })))
    check()
    check()
    expect(lines).toEqual([{ code: 'KEATRAIL_ERR_DEADLETTER_OVERFLOW', fields: { removed: 2, removedTotal: 2, waiting: 3 } }])
    dlq.close()
  })
})
