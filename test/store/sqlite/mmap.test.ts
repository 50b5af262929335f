import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openDatabase } from '../../../src/store/sqlite/open.js'
import { runCli } from '../../helpers/cli.js'
import { KEA_FIXTURES } from '../../helpers/fixtures.js'

// store.sqlite.mmapMiB maps the file for the store connection's reads; `lease attribute` maps
// 1 GiB unless told otherwise (bench/attribute: 15–18 s against 20–23 s for 100,000 rows at 10M events).
describe('store.sqlite.mmapMiB', () => {
  it('sets SQLite\'s mmap_size, and none by default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mmap-'))
    const mapped = openDatabase({ path: join(dir, 'a.db'), busyTimeoutMs: 100, synchronous: 'full', cacheMiB: 8, mmapMiB: 64 }).db
    expect(mapped.pragma('mmap_size', { simple: true })).toBe(64 * 1024 * 1024)
    mapped.close()
    const plain = openDatabase({ path: join(dir, 'b.db'), busyTimeoutMs: 100, synchronous: 'full', cacheMiB: 8 }).db
    expect(plain.pragma('mmap_size', { simple: true })).toBe(0)
    plain.close()
  })

  it('lease attribute takes --mmap-mib and refuses what is not a whole number of MiB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mmap-cli-'))
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-a', join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')])).code).toBe(0)
    const ok = await runCli(['lease', 'attribute', '--data-dir', dir, '--mmap-mib', '0', '-'], '192.0.2.203,2026-11-24T09:16:16Z\n')
    expect([ok.code, ok.out.split('\n')[1]?.split(',').slice(0, 3)]).toEqual([0, ['192.0.2.203', '2026-11-24T09:16:16Z', 'held']])
    const bad = await runCli(['lease', 'attribute', '--data-dir', dir, '--mmap-mib', '-1', '-'], '')
    expect([bad.code, bad.err]).toEqual([2, expect.stringMatching(/--mmap-mib.*a whole number of MiB/)])
  })
})
