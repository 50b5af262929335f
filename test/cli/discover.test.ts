import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/config.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { FileSource } from '../../src/sources/file/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES, readFixture, ROOT } from '../helpers/fixtures.js'
import { KEA_VERSIONS, keaCommand, keaRuntime, type KeaRuntime } from '../helpers/kea.js'

const configs = join(KEA_FIXTURES, 'configs')
const quiet = { info: () => {}, error: () => {} }

describe('keatrail discover', () => {
  it('turns every sample Kea config (and Debian\'s) into a config keatrail run accepts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const files = readdirSync(configs).map((f) => join(configs, f))
    const out = join(dir, 'keatrail.yaml')
    expect((await runCli(['discover', ...files, '--out', out])).code).toBe(0)
    const cfg = loadConfig(out)
    const types = cfg.sources.map((s) => s.type)
    expect(types).toContain('journal')
    expect(types).toContain('syslog')
    expect(types).toContain('file')
    expect(cfg.sources.find((s) => s.type === 'journal')).toMatchObject({ units: ['kea-dhcp4-server.service'], pattern: 'debian-systemd' })
    expect(cfg.sources.find((s) => s.type === 'file' && s.include[0] === '/var/lib/kea/pattern-all.log*')).toMatchObject({ pattern: expect.stringContaining('.-12m=[%.-12m]') })
  })

  it('produces a config that follows the outputs it names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const log = join(dir, 'kea-dhcp4.log')
    writeFileSync(join(dir, 'kea.conf'), `// Kea config with comments
{ "Dhcp4": { "loggers": [ { "name": "kea-dhcp4", "output-options": [ { "output": "${log}", "maxsize": 204800 } ] } ] } }`)
    const out = join(dir, 'keatrail.yaml')
    await runCli(['discover', join(dir, 'kea.conf'), '--out', out, '--data-dir', join(dir, 'data')])
    const cfg = loadConfig(out)
    const spec = cfg.sources[0]!
    expect(spec).toMatchObject({ type: 'file', include: [`${log}*`] })
    writeFileSync(log, readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
    writeFileSync(`${log}.1`, readFixture('captured/kea-dhcp4-INFO-file.log'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const source = new FileSource({ ...(spec as ConstructorParameters<typeof FileSource>[0]), timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 50 }, join(dir, 'state'), quiet)
    const pipeline = new Pipeline(store, { log: quiet })
    const stop = new AbortController()
    const run = pipeline.run([source], stop.signal)
    for (let i = 0; i < 200 && await store.count() < 206 + 254; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    stop.abort()
    await run
    expect(await store.count()).toBe(206 + 254)
    await store.close()
  })
})

describe('keatrail discover writes what the systemd unit can run', () => {
  const unit = readFileSync(join(ROOT, 'deploy', 'keatrail.service'), 'utf8')

  it('writes the subnets (shared networks\' and delegated-prefix pools too) and the HA pair into leases:', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const ha = { library: '/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_ha.so', parameters: { 'high-availability': [{ 'this-server-name': 'server1', mode: 'hot-standby', peers: [{ name: 'server1', url: 'http://192.0.2.1:8000/', role: 'primary' }, { name: 'server2', url: 'http://192.0.2.2:8000/', role: 'standby' }] }] } }
    writeFileSync(join(dir, 'kea4.conf'), JSON.stringify({ Dhcp4: {
      subnet4: [{ id: 1, subnet: '192.0.2.0/24' }, { subnet: '203.0.113.0/24' }],
      'shared-networks': [{ name: 'lan', subnet4: [{ id: 7, subnet: '198.51.100.0/24' }] }],
      'hooks-libraries': [ha]
    } }))
    writeFileSync(join(dir, 'kea6.conf'), JSON.stringify({ Dhcp6: {
      subnet6: [{ id: 1, subnet: '2001:db8:1::/64', 'pd-pools': [{ prefix: '2001:db8:8000::', 'prefix-len': 48, 'delegated-len': 56 }] }],
      'hooks-libraries': [ha]
    } }))
    const out = join(dir, 'keatrail.yaml')
    const r = await runCli(['discover', join(dir, 'kea4.conf'), join(dir, 'kea6.conf'), '--out', out, '--server', 'kea-a'])
    expect(r.code, r.err).toBe(0)
    const cfg = loadConfig(out)
    expect(cfg.leases.subnets).toEqual([
      { server: 'kea-a', id: 1, prefix: '192.0.2.0/24' }, { server: 'kea-a', id: 7, prefix: '198.51.100.0/24' },
      { server: 'kea-a', id: 1, prefix: '2001:db8:1::/64' }, { server: 'kea-a', id: 1, prefix: '2001:db8:8000::/48' }
    ])
    // One domain for the pair (both families), this server by its host.name, the other by its HA name.
    expect(cfg.leases.domains).toEqual([{ name: 'ha-kea-a-server2', servers: ['kea-a', 'server2'] }])
    expect(readFileSync(out, 'utf8')).toContain('make each the host.name its logs carry')
    // A hub with two partners (two relationships sharing this server), and a subnet Kea numbers itself (id 0): one domain, no subnet.
    const rel = (peer: string): unknown => ({ 'this-server-name': 'hub', mode: 'hot-standby', peers: [{ name: 'hub', url: 'http://192.0.2.1:8000/', role: 'primary' }, { name: peer, url: 'http://192.0.2.9:8000/', role: 'standby' }] })
    writeFileSync(join(dir, 'hub.conf'), JSON.stringify({ Dhcp4: { subnet4: [{ id: 0, subnet: '192.0.2.0/24' }], 'hooks-libraries': [{ library: 'libdhcp_ha.so', parameters: { 'high-availability': [rel('spoke1'), rel('spoke2')] } }] } }))
    const hub = join(dir, 'hub.yaml')
    expect((await runCli(['discover', join(dir, 'hub.conf'), '--out', hub, '--server', 'kea-hub'])).code).toBe(0)
    expect(loadConfig(hub).leases).toEqual({ subnets: [], domains: [{ name: 'ha-kea-hub-spoke1-spoke2', servers: ['kea-hub', 'spoke1', 'spoke2'] }] })
  })

  it('dataDir is absolute: the unit\'s StateDirectory by default, --data-dir made absolute', async () => {
    const state = /^StateDirectory=(\S+)$/m.exec(unit)?.[1]
    expect(state).toBe('keatrail')
    const r = await runCli(['discover', join(configs, 'kea4-info.json')])
    expect(r.code).toBe(0)
    expect((parseYaml(r.out) as { dataDir: string }).dataDir).toBe(`/var/lib/${state as string}`)
    const rel = await runCli(['discover', join(configs, 'kea4-info.json'), '--data-dir', 'kt-data'])
    expect((parseYaml(rel.out) as { dataDir: string }).dataDir).toBe(resolve('kt-data'))
  })

  it('one journal source per systemd unit, however many of its loggers log to stdout', async () => {
    const r = await runCli(['discover', ...readdirSync(configs).map((f) => join(configs, f))])
    expect(r.code).toBe(0)
    const journals = (parseYaml(r.out) as { sources: Array<{ type: string, units?: string[] }> }).sources.filter((s) => s.type === 'journal')
    expect(journals.map((s) => s.units)).toEqual([['kea-dhcp4-server.service'], ['kea-dhcp6-server.service']])
  })

  it('warns, with a code, about a Kea config without loggers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const bare = join(dir, 'kea-dhcp4.conf')
    writeFileSync(bare, '{ "Dhcp4": { "interfaces-config": { "interfaces": [ "eth0" ] }, "subnet4": [] } }')
    const r = await runCli(['discover', bare, join(configs, 'debian-kea-dhcp4.conf')])
    expect(r.code).toBe(0)
    expect(r.err).toMatch(new RegExp(`^keatrail: KEATRAIL_ERR_KEA_NO_LOGGERS: ${bare} has no loggers[^\\n]*kea-dhcp4-server\\.service[^\\n]*\\n$`))
    // The other config's sources are still written.
    expect((parseYaml(r.out) as { sources: unknown[] }).sources.length).toBeGreaterThan(0)
  })

  it('warns, with a code, about each log file Kea ≥ 2.6.3 / 3.0 would refuse (outside /var/log/kea), and writes its source', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const conf = join(dir, 'kea-dhcp4.conf')
    const outputs = ['/var/log/kea/a.log', 'b.log', '/var/lib/kea/c.log', '/var/log/kea/sub/d.log', '/var/log//kea/./e.log']
    writeFileSync(conf, JSON.stringify({ Dhcp4: { loggers: [{ name: 'kea-dhcp4', 'output-options': outputs.map((output) => ({ output })) }] } }))
    const r = await runCli(['discover', conf])
    expect(r.code).toBe(0)
    expect(r.err.split('\n').filter(Boolean)).toEqual(['/var/lib/kea', '/var/log/kea/sub'].map((d) =>
      `keatrail: KEATRAIL_ERR_KEA_LOG_PATH: ${conf}: Dhcp4 logs to ${d}/${d === '/var/lib/kea' ? 'c' : 'd'}.log, outside /var/log/kea: Kea 2.4.2, 2.6.3, 3.0.1 and later refuse to start with it unless the daemon's environment sets KEA_LOG_FILE_DIR=${d} (older Kea accept it)`))
    expect((parseYaml(r.out) as { sources: Array<{ include: string[] }> }).sources.map((s) => s.include[0])).toEqual(['/var/log/kea/a.log*', '/var/log/kea/b.log*', '/var/lib/kea/c.log*', '/var/log/kea/sub/d.log*', '/var/log//kea/./e.log*'])
  })

  it('refuses to overwrite --out without --force, in one coded line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const out = join(dir, 'keatrail.yaml')
    writeFileSync(out, 'dataDir: /srv/mine\n')
    const r = await runCli(['discover', join(configs, 'kea4-info.json'), '--out', out])
    expect(r.code).toBe(2)
    expect(r.err).toBe(`keatrail: KEATRAIL_ERR_OUTPUT_EXISTS: ${out} exists: keatrail discover replaces it only with --force\n`)
    expect(readFileSync(out, 'utf8')).toBe('dataDir: /srv/mine\n')
    const forced = await runCli(['discover', join(configs, 'kea4-info.json'), '--out', out, '--force'])
    expect(forced.code).toBe(0)
    expect(loadConfig(out).dataDir).toBe('/var/lib/keatrail')
  })

  it('never writes through a symbolic link at --out, not even with --force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-discover-'))
    const precious = join(dir, 'precious.txt')
    writeFileSync(precious, 'keep me\n')
    const out = join(dir, 'keatrail.yaml')
    symlinkSync(precious, out)
    const r = await runCli(['discover', join(configs, 'kea4-info.json'), '--out', out, '--force'])
    expect(r.code).toBe(2)
    expect(r.err).toBe(`keatrail: KEATRAIL_ERR_OUTPUT_EXISTS: ${out} exists: it is a symbolic link, which keatrail discover never writes through (not even with --force): give the path of a file\n`)
    expect(readFileSync(precious, 'utf8')).toBe('keep me\n')
  })
})

// The path warning against what each real Kea does: a log file outside /var/log/kea stops 2.6
// and 3.0 unless KEA_LOG_FILE_DIR names its directory; 2.2 takes it as it is.
KEA_VERSIONS.forEach((version) => {
  const found = keaRuntime(version)
  const unavailable = typeof found === 'string' ? found : ''
  describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`keatrail discover and real Kea ${version}'s log paths${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
    it(`warns about a log file outside /var/log/kea exactly when Kea ${version} refuses it`, async () => {
      if (unavailable !== '') throw new Error(`CI needs real Kea ${version}: ${unavailable}`)
      const rt = found as KeaRuntime
      const dir = mkdtempSync(join(tmpdir(), `kt-discover-kea${version}-`))
      const log = join(dir, 'kea-dhcp4.log')
      const conf = join(dir, 'kea-dhcp4.conf')
      writeFileSync(conf, JSON.stringify({
        Dhcp4: {
          'interfaces-config': { interfaces: [] },
          'lease-database': { type: 'memfile', persist: false },
          // output_options: 2.2 knows no 'output-options'; 2.6 and 3.0 take both.
          loggers: [{ name: 'kea-dhcp4', severity: 'INFO', output_options: [{ output: log }] }]
        }
      }))
      const r = await runCli(['discover', conf])
      expect(r.err).toContain(`KEATRAIL_ERR_KEA_LOG_PATH: ${conf}: Dhcp4 logs to ${log}, outside /var/log/kea`)
      const start = async (env: Record<string, string>): Promise<{ exitCode: number | null, output: string }> => {
        const run = keaCommand(rt, 'kea-dhcp4', ['-c', conf], { dirs: [dir], env: { KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir, ...env } })
        const p = spawn(run.cmd, run.args, { env: run.env, stdio: ['ignore', 'pipe', 'pipe'] })
        let output = ''
        p.stdout.on('data', (d: Buffer) => { output += d.toString() })
        p.stderr.on('data', (d: Buffer) => { output += d.toString() })
        // Up (it logged DHCP4_STARTED to the file) or refused (it exited).
        await expect.poll(() => p.exitCode !== null || (existsSync(log) && readFileSync(log, 'utf8').includes('DHCP4_STARTED')), { timeout: 15_000, interval: 100 }).toBe(true)
        const exitCode = p.exitCode
        if (exitCode === null) await new Promise<void>((resolve) => { p.on('exit', () => resolve()); p.kill('SIGTERM') })
        return { exitCode, output }
      }
      const plain = await start({})
      if (version === '2.2') expect(plain.exitCode, plain.output).toBeNull()
      else expect(plain).toMatchObject({ exitCode: 1, output: expect.stringContaining(`invalid path specified: '${dir}', supported path is '/var/log/kea'`) })
      // What the warning says to do.
      expect((await start({ KEA_LOG_FILE_DIR: dir })).exitCode).toBeNull()
    }, 40_000)
  })
})
