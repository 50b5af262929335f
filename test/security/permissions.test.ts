import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { writeConfig } from '../chaos/harness.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// keatrail's data (who had which address when, who asked) is private to its user: started from a
// shell with the usual umask 022, what it creates must still be 0700 (directories) and 0600 (files).

const sample = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
const procs: ChildProcess[] = []
afterEach(() => { for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL') })

/** `keatrail …args` under `umask 022`; resolves stderr and the exit code once it exits. */
function keatrail (args: string[]): { proc: ChildProcess, stderr: () => string, exited: Promise<number | null> } {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  const proc = spawn('sh', ['-c', `umask 022; exec '${process.execPath}' '${join(ROOT, 'bin', 'keatrail.js')}' ${quoted}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  procs.push(proc)
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  return { proc, stderr: () => err, exited: new Promise((resolve) => proc.on('exit', (code) => resolve(code))) }
}

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, '0')

/** Mode of each path that exists, by its name relative to `dir`. */
function modes (dir: string, names: string[]): Record<string, string> {
  return Object.fromEntries(names.filter((n) => existsSync(join(dir, n))).map((n) => [n, mode(join(dir, n))]))
}

describe('files keatrail creates are private whatever the umask', () => {
  it('keatrail import: the data directory and its databases', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-perm-'))
    const data = join(dir, 'data', 'nested')
    const k = keatrail(['import', '--data-dir', data, '--tz', 'UTC', sample])
    expect(await k.exited, k.stderr()).toBe(0)
    // Before: 0755 and 0644 (the shell's umask).
    expect(modes(data, ['.', 'keatrail.db', 'deadletter.db'])).toEqual({ '.': '0700', 'keatrail.db': '0600', 'deadletter.db': '0600' })
  })

  it('keatrail run: databases with their -wal and -shm, checkpoints and the audit log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-perm-'))
    const data = join(dir, 'data')
    const k = keatrail(['run', '--config', writeConfig(dir, { sources: [{ type: 'file', name: 'kea', include: [sample], timeZone: 'UTC' }] })])
    let url = ''
    await vi.waitFor(() => {
      const m = /"url":"([^"]+)".*"msg":"API and web UI listening\."/.exec(k.stderr())
      expect(m, k.stderr()).not.toBeNull()
      url = (m as RegExpExecArray)[1] as string
    }, { timeout: 15_000, interval: 50 })
    await vi.waitFor(async () => {
      const res = await fetch(`${url}/api/v1/events?q=action:allocate&size=1`)
      expect(((await res.json()) as { events: unknown[] }).events).toHaveLength(1)
    }, { timeout: 15_000, interval: 100 })
    // A lease lookup is audited: audit.log exists after it.
    expect((await fetch(`${url}/api/v1/leases/history?address=192.0.2.1`)).status).toBe(200)
    await vi.waitFor(() => { expect(existsSync(join(data, 'state', 'file-kea.json'))).toBe(true) }, { timeout: 15_000, interval: 50 })
    const expected = ['.', 'keatrail.db', 'keatrail.db-wal', 'keatrail.db-shm', 'deadletter.db', 'deadletter.db-wal', 'deadletter.db-shm', 'state', 'state/file-kea.json', 'audit.log']
    const seen = modes(data, expected)
    // The ones that must be there while it runs (deadletter.db's WAL appears only once written).
    expect(Object.keys(seen)).toEqual(expect.arrayContaining(['.', 'keatrail.db', 'keatrail.db-wal', 'keatrail.db-shm', 'deadletter.db', 'state', 'state/file-kea.json', 'audit.log']))
    expect(seen).toEqual(Object.fromEntries(Object.keys(seen).map((n) => [n, statSync(join(data, n)).isDirectory() ? '0700' : '0600'])))
    k.proc.kill('SIGTERM')
    expect(await k.exited).toBe(0)
  })
})
