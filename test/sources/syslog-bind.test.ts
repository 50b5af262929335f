import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { bindUdp, bound, running } from '../helpers/syslog.js'

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
