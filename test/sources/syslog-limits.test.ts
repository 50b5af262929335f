import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { bound, closed, connected, running } from '../helpers/syslog.js'

// Issue 17: idle, dribbling or numerous TCP/TLS connections must not lock real senders out.

describe('syslog TCP/TLS connection limits (issue 17 #4)', () => {
  it('refuses connections over the per-peer limit (other peers still get in), logs once per period and counts each', async () => {
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, maxConnectionsPerPeer: 2 })
    const port = await bound(r.source, 'tcp')
    try {
      const a = await connected(port)
      const b = await connected(port)
      // Accepted: a frame from each arrives (so the server has counted both).
      a.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED a\n')
      b.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED b\n')
      await vi.waitFor(() => expect(r.events()).toHaveLength(2))
      const refused = await Promise.all(Array.from({ length: 5 }, async () => await connected(port)))
      await Promise.all(refused.map(closed))
      expect(r.source.counters.rejectedConnections).toBe(5)
      const limitLines = r.logs.filter((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_CONNECTION_LIMIT')
      expect(limitLines).toHaveLength(1)
      expect(limitLines[0]?.[2]).toMatchObject({ source: 'kea', limit: 'maxConnectionsPerPeer', peer: '127.0.0.1', count: 1 })
      // Another address is another peer.
      const c = await connected(port, '127.0.0.2')
      c.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED c\n')
      await vi.waitFor(() => expect(r.events()).toHaveLength(3))
      // A slot freed is a slot usable again.
      a.destroy()
      await vi.waitFor(async () => {
        const d = await connected(port)
        d.end('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED d\n')
        await closed(d)
        expect(r.events().map((e) => e.message)).toContain('DHCP4_STARTED d')
      })
      for (const s of [b, c]) s.destroy()
    } finally {
      await r.stop()
    }
  })

  it('counts and logs connections over maxConnections', async () => {
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, maxConnections: 2 })
    const port = await bound(r.source, 'tcp')
    try {
      const open = [await connected(port), await connected(port)]
      await vi.waitFor(async () => {
        const extra = await connected(port)
        await closed(extra)
        expect(r.source.counters.rejectedConnections).toBeGreaterThan(0)
      })
      expect(r.logs.find((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_CONNECTION_LIMIT')?.[2]).toMatchObject({ limit: 'maxConnections' })
      for (const s of open) s.destroy()
    } finally {
      await r.stop()
    }
  })

  it('closes a connection that dribbles bytes without completing a message in firstFrameTimeoutMs, not one that sent a message', async () => {
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, firstFrameTimeoutMs: 500, idleTimeoutMs: 60_000 })
    const port = await bound(r.source, 'tcp')
    try {
      const good = await connected(port)
      good.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED good\n')
      const loris = await connected(port)
      const t0 = Date.now()
      // One byte every 50 ms (far more often than the idle timeout), never an LF; bounded.
      let n = 0
      const drip = setInterval(() => { if (n++ < 100 && !loris.destroyed) loris.write('x') }, 50)
      await closed(loris)
      clearInterval(drip)
      const took = Date.now() - t0
      expect(took).toBeGreaterThanOrEqual(450)
      expect(took).toBeLessThan(3000)
      expect(n).toBeLessThan(100)
      expect(good.destroyed).toBe(false)
      await vi.waitFor(() => expect(r.events().map((e) => e.message)).toEqual(['DHCP4_STARTED good']))
      expect(r.source.counters.rejectedConnections).toBe(1)
      expect(r.logs.find((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_CONNECTION_LIMIT')?.[2]).toMatchObject({ limit: 'firstFrameTimeoutMs' })
      good.destroy()
    } finally {
      await r.stop()
    }
  })

  it('closes a TLS connection that never completes its handshake in firstFrameTimeoutMs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-tls-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    const r = running({ tls: { host: '127.0.0.1', port: 0, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }, firstFrameTimeoutMs: 500 })
    const port = await bound(r.source, 'tls')
    try {
      const silent = await connected(port)
      const t0 = Date.now()
      await closed(silent)
      expect(Date.now() - t0).toBeLessThan(3000)
    } finally {
      await r.stop()
    }
  })
})
