import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCli as run } from '../helpers/cli.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// Every mistake is one line `keatrail: KEATRAIL_ERR_…: …` with exit code 2 (issue 18): commander's
// own errors, bad option values, and what dependencies raise (Elasticsearch down, a data
// directory this user cannot write, a port in use) named with what was being reached.

const BIN = join(ROOT, 'bin', 'keatrail.js')
const INFO4 = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')

function oneCodedLine (err: string, code: string): void {
  expect(err).toMatch(new RegExp(`^keatrail: ${code}: [^\\n]+\\n$`))
}

/** Runs bin/keatrail.js (the build in dist/) as a process. */
async function runProcess (args: string[], opts: { uid?: number, gid?: number } = {}): Promise<{ code: number | null, out: string, err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, out, err }
}

async function listening (): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

describe('commander\'s own errors', () => {
  it('are one coded usage line with exit code 2, suggestion included', async () => {
    const r = await run(['import', '--data-dri', 'x', INFO4])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_USAGE')
    expect(r.err).toContain('unknown option \'--data-dri\' (Did you mean --data-dir?)')
    const missing = await run(['import'])
    expect(missing.code).toBe(2)
    oneCodedLine(missing.err, 'KEATRAIL_ERR_USAGE')
    const unknown = await run(['imprt'])
    expect(unknown.code).toBe(2)
    oneCodedLine(unknown.err, 'KEATRAIL_ERR_USAGE')
  })

  it('as a process too', async () => {
    const r = await runProcess(['lease', 'at', '--bogus'])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_USAGE')
  })
})

describe('--version and --help', () => {
  it('--version prints package.json\'s version', async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
    for (const flag of ['--version', '-V']) {
      const r = await run([flag])
      expect(r.code).toBe(0)
      expect(r.out).toBe(`${version}\n`)
    }
  })

  it('every command\'s --help ends with an example of it', async () => {
    const commands = ['parse', 'import', 'deadletter list', 'deadletter retry', 'run', 'discover', 'lease at', 'lease history',
      'lease import-csv', 'kea status', 'setup', 'serve', 'api-key', 'config check']
    const root = await run(['--help'])
    expect(root.code).toBe(0)
    for (const c of commands) {
      const r = await run([...c.split(' '), '--help'])
      expect(r.code).toBe(0)
      expect(r.out).toMatch(new RegExp(`\\nExample:\\n {2}\\$ keatrail ${c} `))
      expect(root.out).toContain(`$ keatrail ${c} `)
    }
  })
})

describe('option values are checked when the command line is read', () => {
  it.each([
    [['serve', '--port', '70000'], '--port'],
    [['serve', '--port', 'abc'], '--port'],
    [['serve', '--port', '-1'], '--port'],
    [['api-key', 'ops', '--role', 'superuser'], 'Allowed choices are read, admin'],
    [['discover', '--syslog-port', '99999', 'kea.conf'], '--syslog-port'],
    [['kea', 'status', '--url', 'http://127.0.0.1:1', '--service', 'dhcp5'], 'Allowed choices are dhcp4, dhcp6'],
    [['lease', 'at', '192.0.2.10', 'now', '--store', 'sqlit'], 'Allowed choices are sqlite, elasticsearch'],
    [['import', '--store', 'es', INFO4], 'Allowed choices are sqlite, elasticsearch'],
    [['deadletter', 'list', '--limit', '0'], '--limit'],
    [['deadletter', 'list', '--limit', 'ten'], '--limit'],
    [['deadletter', 'retry', '--limit', '-3'], '--limit'],
    [['setup', '--es', 'http://127.0.0.1:1', '--retention-days', '0'], '--retention-days'],
    [['setup', '--es', 'http://127.0.0.1:1', '--retention-days', '1.5'], '--retention-days']
  ])('%j', async (args, what) => {
    const r = await run(args)
    expect(r.code).toBe(2)
    expect(r.out).toBe('')
    oneCodedLine(r.err, 'KEATRAIL_ERR_USAGE')
    expect(r.err).toContain(what)
  })

  it.each([
    ['lease', 'at', '192.0.2.10', 'now'],
    ['lease', 'history', '--mac', '02:00:00:00:00:0a'],
    ['import', INFO4]
  ])('an unknown --tz is refused before anything is opened: %s %s', async (...args) => {
    const data = join(mkdtempSync(join(tmpdir(), 'kt-err-')), 'data')
    const r = await run([...args, '--tz', 'Nowhere', '--data-dir', data])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_TIMEZONE_INVALID')
    expect(r.err).toContain('"Nowhere"')
    expect(existsSync(data)).toBe(false)
  })

  it('api-key issues the role asked for', async () => {
    const r = await run(['api-key', 'ops', '--role', 'admin'])
    expect(r.code).toBe(0)
    expect(r.out).toContain('role: admin')
    expect((await run(['api-key', 'ops'])).out).toContain('role: read')
  })
})

describe('what dependencies raise, named (processes)', () => {
  it('import to an Elasticsearch nobody listens on names Elasticsearch and its URL', async () => {
    // A port that was free a moment ago: connecting is refused.
    const server = await listening()
    const port = (server.address() as { port: number }).port
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
    const r = await runProcess(['import', '--store', 'elasticsearch', '--es-url', `http://user:secret@127.0.0.1:${port}`,
      '--data-dir', mkdtempSync(join(tmpdir(), 'kt-err-')), INFO4])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_UNREACHABLE')
    expect(r.err).toContain(`Cannot reach Elasticsearch at http://127.0.0.1:${port}: `)
    expect(r.err).toContain('ECONNREFUSED')
    expect(r.err).not.toContain('secret')
  }, 60_000)

  it('a data directory this user cannot write is named', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kt-err-')), 'data')
    mkdirSync(dir)
    // root writes anywhere: run the command as nobody, for whom 0555 is read-only.
    chmodSync(dir, 0o555)
    chmodSync(join(dir, '..'), 0o755)
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
    const r = await runProcess(['import', '--data-dir', dir, '--tz', 'UTC', INFO4], asNobody)
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_DATA_DIR')
    expect(r.err).toContain(`Cannot use the data directory ${dir}: `)
  }, 30_000)

  it('run names the dataDir of its config when it cannot write it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kt-err-'))
    chmodSync(root, 0o755)
    const dir = join(root, 'data')
    mkdirSync(dir, { mode: 0o555 })
    chmodSync(dir, 0o555)
    const config = join(root, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${dir}\napi: { enabled: false }\nsources:\n  - { type: file, name: k, include: ["${INFO4}"] }\n`, { mode: 0o644 })
    const r = await runProcess(['run', '--config', config], process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {})
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_DATA_DIR')
    expect(r.err).toContain(`Cannot use the data directory ${dir}: `)
  }, 30_000)

  it('serve on a port in use is one coded line', async () => {
    const server = await listening()
    try {
      const port = (server.address() as { port: number }).port
      // serve reads a store that exists (readers never create one): made by an import first.
      const data = mkdtempSync(join(tmpdir(), 'kt-err-'))
      expect((await run(['import', '--data-dir', data, INFO4])).code).toBe(0)
      const r = await runProcess(['serve', '--data-dir', data, '--port', String(port)])
      expect(r.code).toBe(2)
      oneCodedLine(r.err, 'KEATRAIL_ERR_API_LISTEN')
      expect(r.err).toContain(`127.0.0.1:${port}`)
      expect(r.err).toContain('in use')
    } finally {
      server.close()
    }
  }, 30_000)
})
