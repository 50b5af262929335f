import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import type * as SnapshotModule from '../../src/kea/snapshot.js'
import { KeaPoller, keaConfigSchema } from '../../src/kea/poller.js'
import type { Log } from '../../src/pipeline/types.js'

// Any error while making Kea's answers into a snapshot (here: buildSnapshot itself throwing, as
// a stack overflow on a hostile answer did) still leaves a snapshot of that server, saying so.

const boom = vi.hoisted(() => ({ on: true }))
vi.mock('../../src/kea/snapshot.js', async (importOriginal) => {
  const real = await importOriginal<typeof SnapshotModule>()
  return {
    ...real,
    buildSnapshot: (i: SnapshotModule.SnapshotInput) => {
      if (boom.on) throw new RangeError('Maximum call stack size exceeded')
      return real.buildSnapshot(i)
    }
  }
})

let server: Server
let url = ''
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => { res.end(JSON.stringify([{ result: 0, arguments: { pid: 1 } }])) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

it('an error building the snapshot: an "internal" error snapshot, logged once with its code', async () => {
  const codes: string[] = []
  const log: Log = { info: () => {}, error: (code) => { codes.push(code) } }
  const p = new KeaPoller(keaConfigSchema.parse({ servers: [{ name: 'kea-a', url, services: ['dhcp4', 'dhcp6'] }] }), undefined, log)
  const r = await p.pollOnce(p.clients[0]!)
  expect(r.snapshots.map((s) => [s.service, s.state, s.error?.kind])).toEqual([['dhcp4', 'error', 'internal'], ['dhcp6', 'error', 'internal']])
  expect(r.snapshots[0]?.error?.message).toContain('Maximum call stack size exceeded')
  expect(codes).toEqual(['KEATRAIL_ERR_KEA_SNAPSHOT', 'KEATRAIL_ERR_KEA_SNAPSHOT'])
  boom.on = false
  expect((await p.pollOnce(p.clients[0]!)).snapshots.map((s) => s.state)).toEqual(['up', 'up'])
})
