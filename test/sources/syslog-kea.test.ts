import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { keaUnavailable, KeaLab } from '../helpers/kea.js'

// Kea logging to syslog (its `syslog` output, i.e. /dev/log), rsyslog started by the test with
// its own config forwarding to keatrail over TCP (octet counted): what Kea logs arrives parsed.
// Kea also writes the same records to a file, the ground truth.

let unavailable = keaUnavailable()
if (unavailable === '') {
  try { execFileSync('which', ['rsyslogd', 'unshare'], { stdio: 'ignore' }) } catch { unavailable = 'rsyslogd is not installed (apt-get install rsyslog)' }
}
const quiet = { info: () => {}, error: () => {} }

describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`Kea → rsyslog → syslog source${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-rsyslog-'))
  const lab = new KeaLab(`kr${process.pid % 10000}`, dir)
  let rsyslog: ChildProcess | undefined
  afterAll(() => {
    lab.down()
    rsyslog?.kill('SIGKILL')
  })

  it('delivers every record Kea logs to syslog, parsed, through rsyslog', async () => {
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const source = new SyslogSource({ type: 'syslog', name: 'rsyslog', tcp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', flushMs: 20 })
    const pipeline = new Pipeline(store, { log: quiet })
    const stop = new AbortController()
    const running = pipeline.run([source], stop.signal)
    for (let i = 0; i < 100 && source.bound.tcp === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20))

    const sock = join(dir, 'log.sock')
    writeFileSync(join(dir, 'rsyslog.conf'), [
      `global(workDirectory="${dir}" parser.escapeControlCharactersOnReceive="off")`,
      'module(load="imuxsock" SysSock.Use="off")',
      `input(type="imuxsock" Socket="${sock}" CreatePath="on")`,
      `action(type="omfwd" target="127.0.0.1" port="${source.bound.tcp}" protocol="tcp" TCP_Framing="octet-counted")`
    ].join('\n') + '\n')
    rsyslog = spawn('rsyslogd', ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslog.pid')], { stdio: 'ignore' })
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(existsSync(sock)).toBe(true)

    lab.up()
    const file = join(dir, 'kea-dhcp4.log')
    await lab.startDhcp4({
      'valid-lifetime': 60,
      subnet4: [{ id: 1, subnet: '192.0.2.0/24', pools: [{ pool: '192.0.2.10 - 192.0.2.100' }] }],
      loggers: [{ name: 'kea-dhcp4', severity: 'INFO', output_options: [{ output: 'syslog' }, { output: file, maxsize: 0 }] }]
    }, sock)
    await lab.perfdhcp(['-r', '20', '-R', '50', '-p', '3'])
    await lab.stopKea()

    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
    expect(lines.length).toBeGreaterThan(50)
    for (let i = 0; i < 200 && await store.count() < lines.length; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    stop.abort()
    await running
    const events = (await store.search({ size: 1000, sort: 'asc' })).events
    expect(events).toHaveLength(lines.length)
    expect(events.every((e) => e.kea.parse.status === 'ok')).toBe(true)
    const codes = (ls: string[]): string[] => ls.sort()
    expect(codes(events.map((e) => e.event.code ?? ''))).toEqual(codes(lines.map((l) => /\] ([A-Z0-9_]+)/.exec(l)?.[1] ?? '')))
    const allocs = events.filter((e) => e.event.action === 'allocate')
    expect(allocs.length).toBeGreaterThan(10)
    expect(allocs[0]).toMatchObject({ log: { logger: 'kea-dhcp4.leases', syslog: { appname: 'kea-dhcp4', facility: { code: 16 } } }, client: { ip: expect.stringMatching(/^192\.0\.2\./) } })
    await store.close()
  }, 60_000)
})
