import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startKeatrail, writeConfig, type Keatrail } from '../chaos/harness.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// `keatrail run` as a process: a configured source that cannot start must fail start-up (not
// leave a service that looks ready and collects nothing), and a signal during start-up stops it.

const sample = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
const fileSource = { type: 'file', name: 'kea', include: [sample], timeZone: 'UTC' }
const running: Keatrail[] = []
const servers: Server[] = []
afterEach(async () => {
  for (const k of running.splice(0)) if (k.proc.exitCode === null) k.proc.kill('SIGKILL')
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve))
})

function start (config: string): Keatrail {
  const k = startKeatrail(config)
  running.push(k)
  return k
}

/** Exit code within `ms`, or 'still running'. */
async function exitWithin (k: Keatrail, ms: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([k.exited, new Promise<'still running'>((resolve) => { timer = setTimeout(resolve, ms, 'still running') })])
  } finally {
    clearTimeout(timer)
  }
}

describe('keatrail run fails start-up when a source cannot start', () => {
  it('exits non-zero with one coded line when a file source\'s state directory cannot be written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-start-'))
    mkdirSync(join(dir, 'data'))
    // Root may write anywhere: a file where the directory should be fails for every user.
    writeFileSync(join(dir, 'data', 'state'), '')
    const k = start(writeConfig(dir, { sources: [fileSource] }))
    const err = collect(k)
    // Before: "Source stopped with an error" in the log, and the process kept running.
    expect(await exitWithin(k, 15_000)).toBe(2)
    const coded = err().split('\n').filter((l) => l.includes('KEATRAIL_ERR_SOURCE_START'))
    expect(coded).toEqual([`keatrail: KEATRAIL_ERR_SOURCE_START: Source kea could not start: state directory ${join(dir, 'data', 'state')} is not writable: EEXIST: file already exists, mkdir '${join(dir, 'data', 'state')}'`])
  })

  it('exits non-zero with one coded line when a syslog TCP port is taken', async () => {
    const taken = createServer()
    servers.push(taken)
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as AddressInfo).port
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-start-'))
    const k = start(writeConfig(dir, { sources: [fileSource, { type: 'syslog', name: 'relay', tcp: { host: '127.0.0.1', port } }] }))
    const err = collect(k)
    expect(await exitWithin(k, 15_000)).toBe(2)
    const coded = err().split('\n').filter((l) => l.includes('KEATRAIL_ERR_SOURCE_START'))
    expect(coded).toEqual([`keatrail: KEATRAIL_ERR_SOURCE_START: Source relay could not start: cannot listen on tcp 127.0.0.1:${port}: address in use`])
  })

  it('exits non-zero with one coded line when a syslog TLS certificate does not exist, even if a port it bound stays open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-start-'))
    const missing = join(dir, 'missing.pem')
    const k = start(writeConfig(dir, { sources: [{ type: 'syslog', name: 'tls', tcp: { host: '127.0.0.1', port: 0 }, tls: { host: '127.0.0.1', port: 0, certFile: missing, keyFile: missing } }] }))
    const err = collect(k)
    expect(await exitWithin(k, 15_000)).toBe(2)
    const coded = err().split('\n').filter((l) => l.includes('KEATRAIL_ERR_SOURCE_START'))
    expect(coded).toEqual([`keatrail: KEATRAIL_ERR_SOURCE_START: Source tls could not start: cannot read TLS certificate ${missing}: no such file`])
  })
})

describe('keatrail run readiness and signals', () => {
  it('reports each source in /readyz once running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-ready-'))
    const k = start(writeConfig(dir, { sources: [fileSource] }))
    const url = await k.apiUrl()
    await vi.waitFor(async () => {
      const res = await fetch(`${url}/readyz`)
      expect({ status: res.status, body: await res.json() as unknown }).toEqual({ status: 200, body: { ready: true, store: expect.any(String), sources: true, sourceStates: { kea: 'running' }, audit: 'ok' } })
    }, { timeout: 10_000, interval: 50 })
    k.proc.kill('SIGTERM')
    expect(await exitWithin(k, 15_000)).toBe(0)
  })

  it('stops on the first SIGTERM sent during start-up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-sig-'))
    const k = start(writeConfig(dir, { sources: [fileSource] }))
    // "keatrail running." comes before the API and the sources start: signal right then.
    await vi.waitFor(() => { expect(k.logs().some((l) => l.msg === 'keatrail running.')).toBe(true) }, { timeout: 10_000, interval: 5 })
    k.proc.kill('SIGTERM')
    // Before: a signal before the sources ran was never heard by the pipeline; only a second one ended it (130).
    expect(await exitWithin(k, 15_000)).toBe(0)
  })
})

/** The process's whole stderr as text, from now on. */
function collect (k: Keatrail): () => string {
  let text = ''
  k.proc.stderr?.on('data', (d: Buffer) => { text += d.toString() })
  return () => text
}
