import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli as run } from '../helpers/cli.js'
import { describe, expect, inject, it } from 'vitest'
import Database from 'better-sqlite3'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'


const esUrl = inject('esUrl')
describe.skipIf(esUrl === '')('keatrail deadletter', () => {
  it('lists rejected events with the reason and retries them once they are fixed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-dlq-'))
    const ns = `dlqcli${Date.now().toString(36)}`
    const events = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))).events
      .filter((e) => e.client?.ip !== undefined).slice(0, 10).map((e) => JSON.parse(JSON.stringify(e)) as typeof e)
    const bad = events[3]!
    const goodIp = bad.client!.ip
    bad.client!.ip = 'garbage'
    const dlq = new DeadLetterStore(join(dir, 'deadletter.db'))
    const es = new ElasticsearchStore({ url: esUrl, namespace: ns, refresh: true }, { deadLetters: dlq })
    await es.ensureTemplates()
    expect((await es.write(events)).deadLettered).toBe(1)
    await es.close()

    const listed = await run(['deadletter', 'list', '--data-dir', dir])
    expect(listed.out).toMatch(new RegExp(`^1\\t.*\\telasticsearch\\t${bad.event.id}\\t400 `))
    expect(listed.err).toContain('1 dead-lettered event(s)')

    // Still broken: retried, rejected again, kept.
    const again = await run(['deadletter', 'retry', '--data-dir', dir, '--store', 'elasticsearch', '--es-url', esUrl, '--es-namespace', ns])
    expect(again.code).toBe(1)
    expect(again.err).toContain('1 rejected again (1 of 1 remain)')

    // Fixed in place (as an operator would after changing the mapping or the data): accepted.
    const fixed = dlq.list()[0]!
    fixed.event.client!.ip = goodIp
    dlq.remove([fixed.seq])
    dlq.add('elasticsearch', [{ event: fixed.event, reason: 'fixed by hand' }])
    dlq.close()
    const ok = await run(['deadletter', 'retry', '--data-dir', dir, '--store', 'elasticsearch', '--es-url', esUrl, '--es-namespace', ns])
    expect(ok.err).toContain('1 stored, 0 already stored, 0 rejected again (0 of 1 remain)')
    const check = new ElasticsearchStore({ url: esUrl, namespace: ns })
    await check.refresh()
    expect(await check.count()).toBe(10)
    await check.close()
  })
})

describe('keatrail deadletter list --json', () => {
  it('lists an entry whose document is no event too, marked unreadable, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-dlq-json-'))
    const events = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))).events.slice(0, 3)
    const dlq = new DeadLetterStore(join(dir, 'deadletter.db'))
    dlq.add('elasticsearch', events.map((event) => ({ event, reason: '400 mapper_parsing_exception' })))
    dlq.close()
    const db = new Database(join(dir, 'deadletter.db'))
    db.prepare('UPDATE deadletter SET doc = ? WHERE seq = 2').run('{}')
    db.close()
    const listed = await run(['deadletter', 'list', '--json', '--data-dir', dir])
    const lines = listed.out.trim().split('\n').map((l) => JSON.parse(l) as { seq: number, unreadable?: boolean, event?: { event: { id: string } } })
    // Before: the unreadable one left out without a word.
    expect(lines.map((l) => [l.seq, l.unreadable ?? false, l.event?.event.id])).toEqual([[1, false, events[0]?.event.id], [2, true, undefined], [3, false, events[2]?.event.id]])
  })
})
