import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { peerGroup } from '../../src/sources/syslog/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { bound, closed, connected, running } from '../helpers/syslog.js'

// Issue 17: idle, dribbling or numerous TCP/TLS connections must not lock real senders out.

describe('syslog TCP/TLS connection limits (issue 17 #4)', () => {
  it('counts peers per network: IPv4 and IPv4-mapped IPv6 per peerPrefixV4, IPv6 per peerPrefixV6', () => {
    expect(peerGroup('192.0.2.77', 24, 64)).toBe('192.0.2.0/24')
    expect(peerGroup('::ffff:192.0.2.77', 24, 64)).toBe('192.0.2.0/24')
    expect(peerGroup('192.0.2.77', 32, 64)).toBe('192.0.2.77/32')
    expect(peerGroup('10.255.1.1', 0, 64)).toBe('0.0.0.0/0')
    expect(peerGroup('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 24, 64)).toBe('2001:db8:1:2:0:0:0:0/64')
    expect(peerGroup('2001:db8:1:2::9', 24, 64)).toBe(peerGroup('2001:db8:1:2:ffff::1', 24, 64))
    expect(peerGroup('2001:db8:1:3::9', 24, 64)).not.toBe(peerGroup('2001:db8:1:2::9', 24, 64))
    expect(peerGroup('fe80::1%eth0', 24, 128)).toBe('fe80:0:0:0:0:0:0:1/128')
    expect(peerGroup('::1', 24, 48)).toBe('0:0:0:0:0:0:0:0/48')
    expect(peerGroup('64:ff9b::192.0.2.1', 24, 128)).toBe('64:ff9b:0:0:0:0:c000:201/128')
  })

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
      expect(limitLines[0]?.[2]).toMatchObject({ source: 'kea', limit: 'maxConnectionsPerPeer', peer: '127.0.0.1', peers: '127.0.0.0/24', count: 1 })
      // Another network (a /24 by default) is another peer; another address in it is not.
      const same = await connected(port, '127.0.0.2')
      await closed(same)
      expect(r.source.counters.rejectedConnections).toBe(6)
      const c = await connected(port, '127.0.1.2')
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

  it('at maxConnections closes the connection idle the longest (no message for the longest time), counted and logged', async () => {
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, maxConnections: 2 })
    const port = await bound(r.source, 'tcp')
    try {
      const idle = await connected(port)
      const busy = await connected(port)
      busy.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED busy\n')
      await vi.waitFor(() => expect(r.events()).toHaveLength(1))
      const extra = await connected(port)
      await closed(idle)
      extra.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED extra\n')
      await vi.waitFor(() => expect(r.events().map((e) => e.message)).toEqual(['DHCP4_STARTED busy', 'DHCP4_STARTED extra']))
      expect(busy.destroyed).toBe(false)
      expect(r.source.counters.evictedConnections).toBe(1)
      expect(r.source.counters.rejectedConnections).toBe(0)
      expect(r.logs.find((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_CONNECTION_LIMIT')?.[2]).toMatchObject({ limit: 'maxConnections', peer: '127.0.0.1', count: 1 })
      for (const s of [busy, extra]) s.destroy()
    } finally {
      await r.stop()
    }
  })

  it('silent connections from many addresses of one network cannot lock a real sender out (M3)', async () => {
    // Before: 8 addresses × 32 connections (one message each, then silence) took all 256 slots
    // until idleTimeoutMs; here 4 addresses × 2 of 4 slots. One network: only maxConnectionsPerPeer.
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, maxConnections: 4, maxConnectionsPerPeer: 2, idleTimeoutMs: 300_000 })
    const port = await bound(r.source, 'tcp')
    const held: Awaited<ReturnType<typeof connected>>[] = []
    try {
      let refused = 0
      for (const host of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
        for (let k = 0; k < 2; k++) {
          const s = await connected(port, host)
          s.write(`<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED ${host}-${k}\n`)
          held.push(s)
        }
      }
      await vi.waitFor(() => expect(r.source.counters.rejectedConnections + r.events().length).toBe(8))
      refused = r.source.counters.rejectedConnections
      expect(refused).toBe(6)
      // Other networks fill the remaining slots, each sending one message and going silent.
      for (const host of ['127.0.1.1', '127.0.2.1']) {
        const s = await connected(port, host)
        s.write(`<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED ${host}\n`)
        held.push(s)
        await vi.waitFor(() => expect(r.events().map((e) => e.message)).toContain(`DHCP4_STARTED ${host}`))
      }
      // All 4 slots taken: the real sender still gets in, in place of the longest-idle.
      const real = await connected(port, '127.0.3.1')
      real.write('<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED real\n')
      await vi.waitFor(() => expect(r.events().map((e) => e.message)).toContain('DHCP4_STARTED real'))
      expect(real.destroyed).toBe(false)
      expect(r.source.counters.evictedConnections).toBe(1)
      expect(r.source.counters.rejectedConnections).toBe(refused)
      real.destroy()
    } finally {
      for (const s of held) s.destroy()
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

describe('syslog connection counters in /metrics (L2)', () => {
  it('exposes refused and evicted connections; TLS connections refused at a limit are not errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-tls-metrics-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    const r = running({ tls: { host: '127.0.0.1', port: 0, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }, maxConnectionsPerPeer: 1 })
    const port = await bound(r.source, 'tls')
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const app = await buildApp({ store, status: { sources: () => ({ kea: { ...r.source.counters } }) } })
    try {
      const first = await connected(port)
      const REFUSED = 20
      for (let i = 0; i < REFUSED; i++) await closed(await connected(port))
      await vi.waitFor(() => expect(r.source.counters.rejectedConnections).toBe(REFUSED))
      first.destroy()
      await closed(first)
      // The refusals' failed handshakes have been reported by now (each before its close).
      const text = (await app.inject({ url: '/metrics' })).body
      expect(text).toContain(`keatrail_source_rejected_connections_total{source="kea"} ${REFUSED}`)
      expect(text).toContain('keatrail_source_evicted_connections_total{source="kea"} 0')
      // Before: each refusal was counted again as an error through tlsClientError.
      expect(text).toContain('keatrail_source_errors_total{source="kea"} 0')
    } finally {
      await app.close()
      await store.close()
      await r.stop()
    }
  })
})
