import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { bound, connected, running, send } from '../helpers/syslog.js'

// Issue 17: a syslog message that is not valid UTF-8 keeps its bytes, as a file line does.

describe('syslog invalid UTF-8 (issue 17 #6)', () => {
  it('keeps the bytes of a message that is not UTF-8 in kea.parse.raw_base64, as the file source does', async () => {
    const r = running({ udp: { host: '127.0.0.1', port: 0 }, tcp: { host: '127.0.0.1', port: 0 } })
    const udp = await bound(r.source, 'udp')
    const tcp = await bound(r.source, 'tcp')
    try {
      const body = Buffer.concat([Buffer.from('INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED bad '), Buffer.from([0xff, 0xc3]), Buffer.from(' byte')])
      await send(udp, Buffer.concat([Buffer.from('<134>Nov 24 09:23:04 kea-dhcp4: '), body]))
      await vi.waitFor(() => expect(r.events()).toHaveLength(1))
      expect(Buffer.from(r.events()[0]?.kea.parse.raw_base64 ?? '', 'base64')).toEqual(body)
      // RFC 5424 with a BOM, over TCP, and an invalid byte in the header too (host name).
      const five = Buffer.concat([Buffer.from('<134>1 2026-11-24T09:23:04Z h\xe9st kea-dhcp4 - - - ', 'latin1'), Buffer.from([0xef, 0xbb, 0xbf]), body])
      const s = await connected(tcp)
      s.end(Buffer.concat([Buffer.from(`${five.length} `), five]))
      await vi.waitFor(() => expect(r.events()).toHaveLength(2))
      expect(Buffer.from(r.events()[1]?.kea.parse.raw_base64 ?? '', 'base64')).toEqual(body)
      // Valid UTF-8 carries no raw bytes.
      await send(udp, '<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED café')
      await vi.waitFor(() => expect(r.events()).toHaveLength(3))
      expect(r.events()[2]?.kea.parse.raw_base64).toBeUndefined()
      // And the store keeps them.
      const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-utf8-')), 'k.db') })
      await store.write(r.events())
      const stored = await store.getMany(r.events().map((e) => e.event.id))
      expect(stored.map((e) => e.kea.parse.raw_base64 === undefined ? undefined : Buffer.from(e.kea.parse.raw_base64, 'base64'))).toEqual([body, body, undefined])
      await store.close()
    } finally {
      await r.stop()
    }
  })
})
