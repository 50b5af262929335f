import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { Batch } from '../../src/pipeline/types.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { bindUdp, bound, freeUdpPort, running, send } from '../helpers/syslog.js'

// Issue 17: how the syslog source binds its ports (exclusively) and starts (fails fast, names
// what failed, leaves nothing open).

describe('syslog UDP: the port is ours alone (issue 17 #3)', () => {
  it('binds exclusively: another socket cannot bind the same UDP port, even with SO_REUSEADDR', async () => {
    const r = running({ udp: { host: '127.0.0.1', port: 0 }, tcp: { host: '127.0.0.1', port: 0 } })
    try {
      const udp = await bound(r.source, 'udp')
      const tcp = await bound(r.source, 'tcp')
      await expect(bindUdp(udp, true)).rejects.toMatchObject({ code: 'EADDRINUSE' })
      await expect(bindUdp(udp, false)).rejects.toMatchObject({ code: 'EADDRINUSE' })
      const other = createServer()
      await expect(new Promise((resolve, reject) => { other.once('error', reject); other.listen(tcp, '127.0.0.1', () => resolve(undefined)) })).rejects.toMatchObject({ code: 'EADDRINUSE' })
    } finally {
      await r.stop()
    }
  })
})

describe('syslog start (issue 17 #5)', () => {
  it('fails with a coded error naming the source and the port, and leaves nothing bound', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const tcp = (taken.address() as { port: number }).port
    const udp = await freeUdpPort()
    const source = new SyslogSource({ type: 'syslog', name: 'kea', udp: { host: '127.0.0.1', port: udp }, tcp: { host: '127.0.0.1', port: tcp } })
    try {
      const err = await source.start().then(() => undefined, (e: unknown) => e as Error & { code: string })
      expect(err?.code).toBe('KEATRAIL_ERR_SOURCE_START')
      expect(err?.message).toBe(`Source kea could not start: cannot listen on tcp 127.0.0.1:${tcp}: address in use`)
      expect(source.bound).toEqual({})
      // The UDP socket bound before the failure is closed: the port is free again.
      const again = await bindUdp(udp, false)
      again.close()
    } finally {
      taken.close()
    }
  })

  it('reports a missing TLS certificate before binding anything', async () => {
    const udp = await freeUdpPort()
    const missing = join(tmpdir(), 'no-such-cert.pem')
    const source = new SyslogSource({ type: 'syslog', name: 'kea', udp: { host: '127.0.0.1', port: udp }, tcp: { host: '127.0.0.1', port: 0 }, tls: { host: '127.0.0.1', port: 0, certFile: missing, keyFile: missing } })
    await expect(source.start()).rejects.toMatchObject({ code: 'KEATRAIL_ERR_SOURCE_START', message: expect.stringContaining(`cannot read TLS certificate ${missing}: no such file`) })
    expect(source.bound).toEqual({})
    const again = await bindUdp(udp, false)
    again.close()
  })

  it('is idempotent, and run() after start() uses what start() bound', async () => {
    const source = new SyslogSource({ type: 'syslog', name: 'kea', udp: { host: '127.0.0.1', port: 0 }, flushMs: 20, timeZone: 'UTC' })
    await source.start()
    const port = source.bound.udp as number
    await source.start()
    expect(source.bound.udp).toBe(port)
    const batches: Batch[] = []
    const abort = new AbortController()
    const run = source.run(async (b) => { batches.push(b) }, abort.signal)
    await send(port, '<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED started')
    await vi.waitFor(() => expect(batches.flatMap((b) => b.events).map((e) => e.event.code)).toEqual(['DHCP4_STARTED']))
    abort.abort()
    await run
  })
})
