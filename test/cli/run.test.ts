import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

/** `keatrail run --config` as a real process, with its stderr (JSON log lines) collected. */
function startRun (config: string): { proc: ChildProcess, stderr: () => string, exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  return { proc, stderr: () => err, exit }
}

async function waitForLog (run: { stderr: () => string }, text: string): Promise<void> {
  for (let i = 0; i < 200 && !run.stderr().includes(text); i++) await new Promise((resolve) => setTimeout(resolve, 25))
}

describe('keatrail run (the process)', () => {
  it('drains and saves checkpoints on SIGTERM; a second signal exits at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-run-'))
    const log = join(KEA_FIXTURES, 'kea-2.2.0-dhcp6-INFO-full.log')
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\nsources:\n  - type: file\n    name: k\n    include: ["${log}"]\n    timeZone: UTC\n    idleFlushMs: 100\n`)
    const first = startRun(config)
    const count = (): number => {
      try { const db = new Database(join(dir, 'data', 'keatrail.db'), { readonly: true }); const n = (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n; db.close(); return n } catch { return 0 }
    }
    for (let i = 0; i < 200 && count() < 371; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    first.proc.kill('SIGTERM')
    expect(await first.exit).toBe(0)
    expect(count()).toBe(371)
    const cp = JSON.parse(readFileSync(join(dir, 'data', 'state', 'file-k.json'), 'utf8')) as Record<string, { offset: number }>
    expect(Object.values(cp).map((c) => c.offset)).toEqual([statSync(log).size])
    const lines = first.stderr().trim().split('\n').map((l) => JSON.parse(l) as { msg: string })
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['keatrail running.', 'Shutting down: draining queued batches.', 'Stopped.']))

    // A second signal during the drain: out at once, with the documented code.
    const second = startRun(config)
    await waitForLog(second, 'keatrail running.')
    second.proc.kill('SIGTERM')
    second.proc.kill('SIGINT')
    expect([0, 130]).toContain(await second.exit)
  }, 30_000)
})

describe('keatrail run and SIGHUP', () => {
  it('survives SIGHUP (systemctl reload) without an API, and still drains on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-hup-'))
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\napi:\n  enabled: false\nsources: []\n`)
    const run = startRun(config)
    await waitForLog(run, 'keatrail running.')
    run.proc.kill('SIGHUP')
    await waitForLog(run, 'SIGHUP received')
    expect(run.proc.exitCode).toBeNull()
    run.proc.kill('SIGTERM')
    expect(await run.exit).toBe(0)
  }, 30_000)
})

describe('keatrail run retention', () => {
  it('applies the configured retention at start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-ret-'))
    const seed = new SqliteStore({ path: join(dir, 'data', 'keatrail.db') })
    const { parseBuffer, readFixture } = await import('../helpers/fixtures.js')
    const { events } = await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
    await seed.write(events.map((e) => ({ ...e, '@timestamp': '2020-01-01T00:00:00.000Z' })))
    await seed.close()
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\nstore:\n  type: sqlite\n  retention:\n    maxAgeDays: 30\nsources: []\n`)
    const run = startRun(config)
    await waitForLog(run, 'Retention deleted')
    run.proc.kill('SIGTERM')
    await run.exit
    expect(run.stderr()).toContain('"deleted":206')
    const check = new SqliteStore({ path: join(dir, 'data', 'keatrail.db') })
    expect(await check.count()).toBe(0)
    await check.close()
  })
})

describe('syslog source and misbehaving clients', () => {
  it('keeps serving while a client holds a connection half-open, and closes it when idle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-half-'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const source = new SyslogSource({ type: 'syslog', name: 's', tcp: { host: '127.0.0.1', port: 0 }, idleTimeoutMs: 1000, flushMs: 20, timeZone: 'UTC' })
    const quiet = { info: () => {}, error: () => {} }
    const pipeline = new Pipeline(store, { log: quiet })
    const stop = new AbortController()
    const run = pipeline.run([source], stop.signal)
    for (let i = 0; i < 100 && source.bound.tcp === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const stuck = connect(source.bound.tcp as number, '127.0.0.1')
    const closed = new Promise<void>((resolve) => stuck.on('close', () => resolve()))
    stuck.write('200 <134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.x.1] DHC') // and never the rest
    const ok = connect(source.bound.tcp as number, '127.0.0.1')
    ok.end('<134>Nov 24 09:23:05 kea-dhcp4: INFO  [kea-dhcp4.x.1] DHCP4_STARTED ok\n')
    for (let i = 0; i < 100 && await store.count() < 1; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await store.count()).toBe(1)
    const t0 = Date.now()
    await closed
    expect(Date.now() - t0).toBeLessThan(5000)
    stop.abort()
    await run
    await store.close()
  })
})
