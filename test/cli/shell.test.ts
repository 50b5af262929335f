import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, inject, it, vi } from 'vitest'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/config.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// The shell: one composition root turns a config (and flags) into stores, sources, logger and
// API, for every command the same way.

const sample = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
const esUrl = inject('esUrl')

interface Proc { proc: ChildProcess, lines: () => Array<Record<string, unknown>>, stderr: () => string, exited: Promise<number | null> }
const procs: Proc[] = []
const servers: Server[] = []
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.proc.exitCode === null) { p.proc.kill('SIGKILL'); await p.exited }
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve))
})

/** keatrail as a process, with its JSON log lines. */
function keatrail (...args: string[]): Proc {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const p = { proc, stderr: () => err, exited, lines: () => err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>) }
  procs.push(p)
  return p
}

async function listening (p: Proc): Promise<string> {
  let url: string | undefined
  await vi.waitFor(() => {
    if (p.proc.exitCode !== null) throw new Error(`exited ${p.proc.exitCode}: ${p.stderr()}`)
    url = p.lines().find((l) => l.msg === 'API and web UI listening.')?.url as string | undefined
    expect(url, p.stderr()).toBeDefined()
  }, { timeout: 15_000, interval: 50 })
  return url as string
}

function config (dir: string, doc: Record<string, unknown>): string {
  const path = join(dir, 'keatrail.yaml')
  writeFileSync(path, stringify({ dataDir: join(dir, 'data'), api: { port: 0 }, ...doc }))
  return path
}

async function total (url: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/events?size=1`)
  expect(res.status).toBe(200)
  const t = (await res.json() as { total: number | { value: number } }).total
  return typeof t === 'number' ? t : t.value
}

describe('keatrail.yaml is composed of the components\' schemas', () => {
  it('accepts every field a store component accepts (SQLite cacheMiB, Elasticsearch bulk)', () => {
    // Before: "Unrecognized key" for both; the config redeclared narrower store schemas.
    expect(parseConfig({ store: { type: 'sqlite', cacheMiB: 64 } }).store).toMatchObject({ type: 'sqlite', cacheMiB: 64 })
    expect(parseConfig({ store: { type: 'elasticsearch', url: 'http://127.0.0.1:9200', bulk: { concurrency: 2 } } }).store)
      .toMatchObject({ type: 'elasticsearch', bulk: { concurrency: 2, flushBytes: 5_000_000 } })
  })

  it('fills every default from the component schemas', () => {
    const cfg = parseConfig({})
    expect(cfg).toMatchObject({ dataDir: './data', store: { type: 'sqlite', synchronous: 'full' }, kea: { alerts: { warn: 80, critical: 95 } }, api: { port: 8080 }, log: { level: 'info' } })
  })
})

describe('keatrail serve --config', () => {
  it('serves the SQLite store of the config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-serve-sqlite-'))
    const cfg = config(dir, { store: { type: 'sqlite', cacheMiB: 16 } })
    expect((await runCli(['import', '--config', cfg, '--tz', 'UTC', sample])).code).toBe(0)
    const url = await listening(keatrail('serve', '--config', cfg))
    expect(await total(url)).toBe(206)
  })

  it.skipIf(esUrl === '')('serves the Elasticsearch store of the config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-serve-es-'))
    const namespace = `serve${Date.now().toString(36)}`
    const cfg = config(dir, { store: { type: 'elasticsearch', url: esUrl, namespace, refresh: true } })
    expect((await runCli(['import', '--config', cfg, '--tz', 'UTC', sample])).code).toBe(0)
    // Before: the store section was ignored and an empty SQLite database in dataDir was served.
    const serve = keatrail('serve', '--config', cfg)
    const url = await listening(serve)
    expect(await total(url)).toBe(206)
    expect(existsSync(join(dir, 'data', 'keatrail.db'))).toBe(false)
  })
})

describe('setup --config', () => {
  it.skipIf(esUrl === '')('installs into the Elasticsearch store of the config (its URL and namespace)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-setup-cfg-'))
    const namespace = `setup${Date.now().toString(36)}`
    const r = await runCli(['setup', '--config', config(dir, { store: { type: 'elasticsearch', url: esUrl, namespace } })])
    expect(r.code, r.err).toBe(0)
    expect(r.out).toContain(`elasticsearch ${esUrl}:`)
    expect(r.out).toContain(`keatrail-leases-${namespace}`)
  })
})

describe('read commands never create a store', () => {
  // Before: each made an empty store at the mistyped path and answered from it
  // ("nobody held it", "0 dead-lettered event(s)", a ready API).
  const typo = (): string => join(mkdtempSync(join(tmpdir(), 'kt-typo-')), 'dtaa')
  const oneLine = (err: string, code: string, path: string): void => {
    const lines = err.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^keatrail: ${code}: `))
    expect(lines[0]).toContain(path)
  }

  it('lease at, lease history, deadletter list and retry, store migrate, serve: one coded line naming the path, nothing created', async () => {
    for (const args of [
      ['store', 'migrate'],
      ['lease', 'at', '192.0.2.10', '2026-11-24T18:02:30Z'],
      ['lease', 'history', '--address', '192.0.2.10'],
      ['deadletter', 'list'],
      ['deadletter', 'retry'],
      ['serve', '--port', '0']
    ]) {
      const dir = typo()
      const r = await runCli([...args, '--data-dir', dir])
      expect(r.code, args.join(' ')).toBe(2)
      oneLine(r.err, 'KEATRAIL_ERR_STORE_MISSING', dir)
      expect(existsSync(dir), args.join(' ')).toBe(false)
    }
  })

  it('store migrate with an Elasticsearch config: one coded usage line, nothing created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-migrate-es-'))
    const r = await runCli(['store', 'migrate', '--config', config(dir, { store: { type: 'elasticsearch', url: 'http://127.0.0.1:1' } })])
    expect(r.code).toBe(2)
    oneLine(r.err, 'KEATRAIL_ERR_USAGE', 'Elasticsearch')
    expect(existsSync(join(dir, 'data'))).toBe(false)
  })

  it('the same through --config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-typo-cfg-'))
    const cfg = config(dir, {})
    const r = await runCli(['lease', 'at', '--config', cfg, '192.0.2.10', '2026-11-24T18:02:30Z'])
    expect(r.code).toBe(2)
    oneLine(r.err, 'KEATRAIL_ERR_STORE_MISSING', join(dir, 'data', 'keatrail.db'))
    expect(existsSync(join(dir, 'data'))).toBe(false)
  })

  it.skipIf(esUrl === '')('an Elasticsearch namespace without keatrail\'s data: one coded line naming it, nothing created', async () => {
    const namespace = `typo${Date.now().toString(36)}`
    const dir = typo()
    const r = await runCli(['lease', 'at', '--store', 'elasticsearch', '--es-url', esUrl, '--es-namespace', namespace, '--data-dir', dir, '192.0.2.10', '2026-11-24T18:02:30Z'])
    expect(r.code).toBe(2)
    oneLine(r.err, 'KEATRAIL_ERR_STORE_MISSING', `${esUrl} namespace ${namespace}`)
    expect(existsSync(dir)).toBe(false)
  })

  it('writers create it: import, then the readers answer from it', async () => {
    const dir = typo()
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', sample])).code).toBe(0)
    const r = await runCli(['deadletter', 'list', '--data-dir', dir])
    expect(r.code).toBe(0)
    expect(r.err).toContain('0 dead-lettered event(s)')
  })
})

describe('one writer per data directory', () => {
  const running = async (p: Proc): Promise<void> => {
    await vi.waitFor(() => {
      if (p.proc.exitCode !== null) throw new Error(`exited ${p.proc.exitCode}: ${p.stderr()}`)
      expect(p.lines().some((l) => l.msg === 'keatrail running.')).toBe(true)
    }, { timeout: 15_000, interval: 25 })
  }

  it('a second keatrail run on the same dataDir fails with one coded line naming the holder; the first keeps running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-lock-'))
    const cfg = config(dir, { sources: [{ type: 'file', name: 'k', include: [sample], timeZone: 'UTC' }] })
    const first = keatrail('run', '--config', cfg)
    await running(first)
    const pid = first.proc.pid as number
    expect(readFileSync(join(dir, 'data', 'keatrail.lock'), 'utf8').trim()).toBe(String(pid))

    // Before: both ran, following the same files with the same checkpoints.
    const second = keatrail('run', '--config', cfg, '--no-api')
    expect(await second.exited).toBe(2)
    expect(second.stderr().trim().split('\n')).toEqual([`keatrail: KEATRAIL_ERR_DATADIR_LOCKED: Data directory ${join(dir, 'data')} is in use by another keatrail run (pid ${pid}, lock file ${join(dir, 'data', 'keatrail.lock')}): one writer per data directory`])
    // In-process too (the same check, whichever process asks).
    const inProcess = await runCli(['run', '--config', cfg, '--no-api'])
    expect(inProcess.code).toBe(2)
    expect(inProcess.err).toContain(`KEATRAIL_ERR_DATADIR_LOCKED: Data directory ${join(dir, 'data')} is in use by another keatrail run (pid ${pid}`)
    // import is a writer too. Before: it wrote beside the service (stalling its writes) and
    // died with SQLITE_BUSY; now one coded line naming the running pid, the lock untouched.
    const imported = await runCli(['import', '--data-dir', join(dir, 'data'), '--tz', 'UTC', sample])
    expect(imported.code).toBe(2)
    expect(imported.err.trim().split('\n')).toEqual([`keatrail: KEATRAIL_ERR_DATADIR_LOCKED: Data directory ${join(dir, 'data')} is in use by another keatrail run (pid ${pid}, lock file ${join(dir, 'data', 'keatrail.lock')}): one writer per data directory`])
    expect(readFileSync(join(dir, 'data', 'keatrail.lock'), 'utf8').trim()).toBe(String(pid))
    expect(first.proc.exitCode).toBeNull()

    first.proc.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    expect(existsSync(join(dir, 'data', 'keatrail.lock'))).toBe(false)
  })

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-lock-stale-'))
    const cfg = config(dir, { sources: [] })
    const gone = spawn(process.execPath, ['-e', ''])
    await new Promise((resolve) => gone.on('exit', resolve))
    mkdirSync(join(dir, 'data'))
    writeFileSync(join(dir, 'data', 'keatrail.lock'), `${gone.pid as number}\n`)
    const run = keatrail('run', '--config', cfg)
    await running(run)
    expect(readFileSync(join(dir, 'data', 'keatrail.lock'), 'utf8').trim()).toBe(String(run.proc.pid))
    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  })

  it('takes over a lock whose pid now belongs to a process started after it was written (pids are reused, at boot too)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-lock-reused-'))
    const cfg = config(dir, { sources: [] })
    mkdirSync(join(dir, 'data'))
    const lock = join(dir, 'data', 'keatrail.lock')
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'])
    procs.push({ proc: other, lines: () => [], stderr: () => '', exited: new Promise((resolve) => other.on('exit', resolve)) })
    writeFileSync(lock, `${other.pid as number}\n`)
    // Written an hour before that process started: it cannot be the one that wrote it.
    const hourAgo = new Date(Date.now() - 3_600_000)
    utimesSync(lock, hourAgo, hourAgo)
    const run = keatrail('run', '--config', cfg, '--no-api')
    await running(run)
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(run.proc.pid))
    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  })
})

describe('the API port taken fails start-up', () => {
  async function taken (): Promise<number> {
    const server = createServer()
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return (server.address() as AddressInfo).port
  }
  const line = (port: number): string => `keatrail: KEATRAIL_ERR_API_LISTEN: The API cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`

  it('run (in-process): one coded line; the lock, the store and the signal handlers are released', async () => {
    const port = await taken()
    const dir = mkdtempSync(join(tmpdir(), 'kt-port-'))
    const cfg = config(dir, { api: { port }, sources: [{ type: 'file', name: 'k', include: [sample], timeZone: 'UTC' }] })
    const handlers = [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]
    // Before: "API not started; collecting anyway." and the service ran on without its API.
    const r = await runCli(['run', '--config', cfg])
    expect(r.code).toBe(2)
    expect(r.err.split('\n').filter((l) => !l.startsWith('{') && l !== '')).toEqual([line(port)])
    expect([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]).toEqual(handlers)
    expect(existsSync(join(dir, 'data', 'keatrail.lock'))).toBe(false)
  })

  it('run (the process) exits 2', async () => {
    const port = await taken()
    const dir = mkdtempSync(join(tmpdir(), 'kt-port-'))
    const run = keatrail('run', '--config', config(dir, { api: { port }, sources: [] }))
    expect(await run.exited).toBe(2)
    expect(run.stderr()).toContain(line(port))
  })

  it('serve: one coded line', async () => {
    const port = await taken()
    const dir = mkdtempSync(join(tmpdir(), 'kt-port-'))
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', sample])).code).toBe(0)
    const r = await runCli(['serve', '--data-dir', dir, '--port', String(port)])
    expect(r.code).toBe(2)
    expect(r.err.trim()).toBe(line(port))
  })
})

describe('log level', () => {
  it('--log-level and log.level choose what is written; sources log through a child with their name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-level-'))
    const sources = [{ type: 'file', name: 'k', include: [sample], timeZone: 'UTC' }]
    const quiet = keatrail('run', '--config', config(dir, { log: { level: 'warn' }, sources }), '--no-api')
    const loud = keatrail('run', '--config', config(mkdtempSync(join(tmpdir(), 'kt-level-')), { sources }), '--no-api', '--log-level', 'debug')
    await vi.waitFor(() => { expect(loud.lines().some((l) => l.msg === 'Following file.')).toBe(true) }, { timeout: 15_000, interval: 50 })
    const following = loud.stderr().split('\n').find((l) => l.includes('"msg":"Following file."')) as string
    expect(following.match(/"source":"k"/g)).toHaveLength(1)
    // The quiet one writes nothing to wait for: its checkpoint says it runs (signal handlers in place).
    await vi.waitFor(() => { expect(existsSync(join(dir, 'data', 'state', 'file-k.json'))).toBe(true) }, { timeout: 15_000, interval: 50 })
    quiet.proc.kill('SIGTERM')
    loud.proc.kill('SIGTERM')
    expect(await quiet.exited).toBe(0)
    expect(await loud.exited).toBe(0)
    // Before: no log.level field (config rejected) and no --log-level flag.
    expect(quiet.lines().filter((l) => l.level === 'info')).toEqual([])
    expect(loud.lines().some((l) => l.msg === 'Stopped.')).toBe(true)
  })
})

describe('/metrics of keatrail run', () => {
  it('attributes events to their source, counts bytes and events apart, and follows Prometheus naming', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-metrics-'))
    const run = keatrail('run', '--config', config(dir, { sources: [{ type: 'file', name: 'k', include: [sample], timeZone: 'UTC', idleFlushMs: 100 }] }))
    const url = await listening(run)
    const scrape = async (): Promise<{ text: string, m: Map<string, number> }> => {
      const text = await (await fetch(`${url}/metrics`)).text()
      const m = new Map<string, number>()
      for (const l of text.split('\n')) if (l !== '' && !l.startsWith('#')) m.set(l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1)))
      return { text, m }
    }
    // Before: keatrail_source_events{source="k",counter="stored"} stayed 0 while the pipeline stored 206.
    await vi.waitFor(async () => {
      expect((await scrape()).m.get('keatrail_source_events_total{source="k",outcome="stored"}')).toBe(206)
    }, { timeout: 15_000, interval: 100 })
    const { text, m } = await scrape()
    expect(m.get('keatrail_source_received_bytes_total{source="k"}')).toBe(statSync(sample).size)
    expect(m.get('keatrail_source_received_events_total{source="k"}')).toBe(206)
    expect(m.get('keatrail_source_parsed_events_total{source="k",status="ok"}')).toBe(206)
    expect(m.get('keatrail_source_parsed_events_total{source="k",status="unmatched"}')).toBe(0)
    expect(m.get('keatrail_source_events_total{source="k",outcome="duplicate"}')).toBe(0)
    expect(m.get('keatrail_pipeline_events_total{outcome="stored"}')).toBe(206)
    expect(m.get('keatrail_source_state{source="k",state="running"}')).toBe(1)
    expect(m.get('keatrail_deadletter_dropped_events_total')).toBe(0)
    expect(m.has('keatrail_process_cpu_seconds_total')).toBe(true)
    expect(text).not.toContain('keatrail_process_process_')
    // Every counter's name ends in _total.
    const counters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((x) => x[1] as string)
    expect(counters.length).toBeGreaterThan(10)
    expect(counters.filter((n) => !n.endsWith('_total'))).toEqual([])
    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  })
})

describe('a data directory keatrail cannot use', () => {
  it('run: one coded line naming it (a file where the directory should be)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-datadir-'))
    writeFileSync(join(dir, 'data'), '')
    // Root may write anywhere: a file in the way fails for every user.
    const r = await runCli(['run', '--config', config(dir, { sources: [] }), '--no-api'])
    expect(r.code).toBe(2)
    expect(r.err.trim()).toMatch(new RegExp(`^keatrail: KEATRAIL_ERR_DATA_DIR: Cannot use the data directory ${join(dir, 'data')}: ENOTDIR`))
  })
})

describe('keatrail run with Elasticsearch not there yet', () => {
  it('waits for it (logged, with the error and its stack) and stops on SIGTERM meanwhile', async () => {
    const closed = createServer()
    servers.push(closed)
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    servers.splice(servers.indexOf(closed), 1)
    const dir = mkdtempSync(join(tmpdir(), 'kt-es-wait-'))
    const run = keatrail('run', '--config', config(dir, { store: { type: 'elasticsearch', url: `http://127.0.0.1:${port}`, retry: { initialMs: 50, maxMs: 200 } }, sources: [] }))
    await vi.waitFor(() => {
      expect(run.lines().some((l) => l.msg === 'Elasticsearch not reachable to check templates; waiting for it.')).toBe(true)
    }, { timeout: 15_000, interval: 50 })
    const waiting = run.lines().find((l) => l.msg === 'Elasticsearch not reachable to check templates; waiting for it.') as Record<string, unknown>
    expect(waiting).toMatchObject({ level: 'error', code: 'KEATRAIL_ERR_STORE_WRITE', error: expect.stringContaining('ECONNREFUSED'), err: { stack: expect.any(String) } })
    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
    expect(existsSync(join(dir, 'data', 'keatrail.lock'))).toBe(false)
  })

  it('says when the cluster refuses its credentials (401), not "not reachable", and still waits', async () => {
    const refusing = createHttpServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(401, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' })
        res.end(JSON.stringify({ error: { type: 'security_exception', reason: 'unable to authenticate user [keatrail] for REST request [/_cluster/health]' }, status: 401 }))
      })
    })
    servers.push(refusing)
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve))
    const url = `http://keatrail:S3cretPW@127.0.0.1:${(refusing.address() as AddressInfo).port}`
    const dir = mkdtempSync(join(tmpdir(), 'kt-es-401-'))
    const run = keatrail('run', '--config', config(dir, { store: { type: 'elasticsearch', url, retry: { initialMs: 50, maxMs: 200 } }, sources: [] }))
    await vi.waitFor(() => {
      expect(run.lines().filter((l) => l.code === 'KEATRAIL_ERR_STORE_AUTH').length, run.stderr()).toBeGreaterThanOrEqual(2)
    }, { timeout: 15_000, interval: 50 })
    const line = run.lines().find((l) => l.code === 'KEATRAIL_ERR_STORE_AUTH') as Record<string, unknown>
    expect(line).toMatchObject({ level: 'error', msg: expect.stringMatching(/HTTP 401, the credentials were not accepted .*unable to authenticate user.*; waiting for it\.$/) })
    expect(run.stderr()).not.toContain('S3cretPW')
    expect(run.lines().some((l) => l.msg === 'Elasticsearch not reachable to check templates; waiting for it.')).toBe(false)
    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  })
})
