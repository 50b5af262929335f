import { describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../../src/parse/event.js'
import { chainIndex } from '../../../src/store/elasticsearch/chain.js'
import { eventsPattern } from '../../../src/store/elasticsearch/store.js'
import { engineStore, searchEngines } from '../../helpers/engines.js'
import { parseBuffer, plainCopy, readFixture } from '../../helpers/fixtures.js'

// Issue 22: the tamper-evidence chain in Elasticsearch and OpenSearch — its own index, one link
// per write, the same format as the SQLite store's; a record altered in the cluster behind
// keatrail's back (one character) is found and named, and so is a link removed.

async function fixtureEvents (): Promise<KeaEvent[]> {
  return (await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-a', path: 'captured/kea-dhcp4-INFO-file.log' })).events.map(plainCopy)
}

for (const engine of searchEngines()) {
  describe.skipIf(engine.skip !== '' && process.env.CI !== 'true')(`${engine.name}: the tamper-evidence chain${engine.skip === '' ? '' : ` (skipped: ${engine.skip})`}`, () => {
    it('links each write\'s created records, verifies them, names an altered record and a removed link', async () => {
      if (engine.skip !== '') throw new Error(`CI needs ${engine.name}: ${engine.skip}`)
      const namespace = `chain${Date.now().toString(36)}`
      const events = await fixtureEvents()
      const store = engineStore(engine, { namespace, refresh: true })
      try {
        await store.ensureTemplates()
        for (let i = 0; i < events.length; i += 40) await store.write(events.slice(i, i + 40))
        // A replay creates nothing: no link.
        await store.write(events.slice(0, 40))
        const batches = Math.ceil(events.length / 40)
        const ok = await store.chain.verify()
        expect(ok.broken).toBeUndefined()
        expect([ok.links, ok.intact, ok.records, ok.uncovered]).toEqual([batches, batches, events.length, 0])
        expect(ok.head).toEqual(await store.chain.head())
        const target = events[50] as KeaEvent
        expect((await store.chain.proofs([target.event.id]))[0]?.seq).toBe(2)

        // One character of one stored record changed in the cluster.
        const hit = (await (await fetch(`${engine.url}/${eventsPattern(namespace)}/_search?q=_id:${encodeURIComponent(target.event.id)}`)).json()) as { hits: { hits: Array<{ _index: string, _id: string }> } }
        const at = hit.hits.hits[0] as { _index: string, _id: string }
        const upd = await fetch(`${engine.url}/${at._index}/_update/${encodeURIComponent(at._id)}?refresh=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ doc: { event: { original: target.event.original.replace('INFO', 'INF0') } } }) })
        expect(upd.status, await upd.text()).toBe(200)
        const altered = await store.chain.verify()
        expect(altered.broken).toMatchObject({ seq: 2, reason: 'a record differs from what was stored', record: { id: target.event.id, position: 10 } })

        // Put back, the chain holds again; then a link removed from its middle: the next one's
        // predecessor no longer matches.
        await fetch(`${engine.url}/${at._index}/_update/${encodeURIComponent(at._id)}?refresh=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ doc: { event: { original: target.event.original } } }) })
        expect((await store.chain.verify()).broken).toBeUndefined()
        const del = await fetch(`${engine.url}/${chainIndex(namespace)}/_doc/${String(3).padStart(16, '0')}?refresh=true`, { method: 'DELETE' })
        expect(del.status).toBe(200)
        const removed = await store.chain.verify()
        expect(removed.broken).toMatchObject({ seq: 4, reason: expect.stringMatching(/predecessor is not the link before it/) })
        // The oldest removed too.
        await fetch(`${engine.url}/${chainIndex(namespace)}/_doc/${String(1).padStart(16, '0')}?refresh=true`, { method: 'DELETE' })
        expect((await store.chain.verify()).broken).toMatchObject({ seq: 2, reason: expect.stringMatching(/does not follow the zeros a chain begins with/) })
      } finally {
        await store.close()
      }
    })

    it('a re-import that reads records better (their text changed) keeps the chain whole', async () => {
      if (engine.skip !== '') throw new Error(`CI needs ${engine.name}: ${engine.skip}`)
      const namespace = `chainrepair${Date.now().toString(36)}`
      const events = (await fixtureEvents()).filter((e) => e.event.dataset === 'kea.dhcp4').slice(0, 40)
      // Read worse before: the first 20 as unmatched (another data stream), the next 20 as partial
      // (the same one: replaced under their id); both with a shorter text (a record cut at a line).
      const worse = events.map((e, i) => {
        const w = structuredClone(e)
        w.kea.parse.status = i < 20 ? 'unmatched' : 'partial'
        if (i < 20) { w.event.dataset = 'kea.other'; delete w.event.action }
        w.event.original = e.event.original.slice(0, 40)
        return w
      })
      const store = engineStore(engine, { namespace, refresh: true })
      try {
        await store.ensureTemplates()
        await store.write(worse)
        const r = await store.write(events)
        expect(r.replaced).toBe(40)
        const v = await store.chain.verify()
        expect(v.broken).toBeUndefined()
        expect(v.records).toBe(40)
        // A record's proof names the newer link, the one with its text now.
        const proofs = await store.chain.proofs([(events[5] as KeaEvent).event.id, (events[25] as KeaEvent).event.id])
        expect(proofs.map((p) => p?.seq)).toEqual([2, 2])
      } finally {
        await store.close()
      }
    })

    it('two stores appending to one namespace at once keep one chain', async () => {
      if (engine.skip !== '') throw new Error(`CI needs ${engine.name}: ${engine.skip}`)
      const namespace = `chainrace${Date.now().toString(36)}`
      const events = await fixtureEvents()
      const a = engineStore(engine, { namespace, refresh: true })
      const b = engineStore(engine, { namespace, refresh: true })
      try {
        await a.ensureTemplates()
        const half = Math.floor(events.length / 2)
        const left = events.slice(0, half)
        const right = events.slice(half)
        await Promise.all([
          (async () => { for (let i = 0; i < left.length; i += 40) await a.write(left.slice(i, i + 40)) })(),
          (async () => { for (let i = 0; i < right.length; i += 40) await b.write(right.slice(i, i + 40)) })()
        ])
        const r = await a.chain.verify()
        expect(r.broken).toBeUndefined()
        expect([r.links, r.records]).toEqual([Math.ceil(left.length / 40) + Math.ceil(right.length / 40), events.length])
      } finally {
        await a.close()
        await b.close()
      }
    })
  })
}
