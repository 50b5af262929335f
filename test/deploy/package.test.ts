import { execFile, spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/fixtures.js'

// How /usr/bin/keatrail (the systemd unit's ExecStart) comes to be: `npm pack` makes the
// tarball, `npm install -g ./keatrail-*.tgz` (npm's global prefix is /usr for Debian's and
// NodeSource's node) unpacks it into /usr/lib/node_modules/keatrail and links
// /usr/bin/keatrail to its bin/keatrail.js. A global install fetches the dependencies from the
// registry, which a test cannot: this one packs the tarball, lays it out as npm would (the
// dependencies are this checkout's node_modules) and runs the linked command.

const run = promisify(execFile)
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string, bin: Record<string, string>, files: string[], scripts: Record<string, string> }

let prefix = ''
let installed = ''
let bin = ''
let packed: string[] = []

beforeAll(async () => {
  prefix = mkdtempSync(join(tmpdir(), 'kt-pack-'))
  // The suite has built dist/ already (npm test): prepack's build is not repeated here.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', prefix], { cwd: ROOT })
  const [info] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  if (info === undefined) throw new Error('npm pack printed nothing')
  packed = info.files.map((f) => f.path)
  installed = join(prefix, 'lib', 'node_modules', pkg.name)
  mkdirSync(installed, { recursive: true })
  await run('tar', ['xzf', join(prefix, info.filename), '-C', installed, '--strip-components=1'])
  symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'))
  mkdirSync(join(prefix, 'bin'))
  bin = join(prefix, 'bin', 'keatrail')
  symlinkSync(join('..', 'lib', 'node_modules', pkg.name, pkg.bin.keatrail as string), bin)
}, 60_000)

/** The directories and files below the package root that the code reads at run time. */
function runtimeReads (): string[] {
  const reads = new Set<string>()
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (p.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/join\(packageRoot\(\), ((?:'[^']+'(?:, )?)+)/g)) {
          reads.add([...(m[1] as string).matchAll(/'([^']+)'/g)].map((q) => q[1] as string).filter((s) => !s.includes('*')).join('/'))
        }
      }
    }
  }
  walk(join(ROOT, 'src'))
  return [...reads].sort()
}

describe('the npm package (how /usr/bin/keatrail is installed)', () => {
  it('packs a fresh build first: prepack builds', () => {
    expect(pkg.scripts.prepack).toBe('npm run build')
  })

  it('holds the command, the build and every file the code reads from the package root', () => {
    expect(pkg.bin).toEqual({ keatrail: 'bin/keatrail.js' })
    expect(packed).toContain('bin/keatrail.js')
    accessSync(join(installed, 'bin', 'keatrail.js'), constants.X_OK)
    // Every compiled module, the reader worker (a file loaded by path) among them.
    const built = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => e.isDirectory() ? built(join(dir, e.name)) : e.name.endsWith('.js') ? [relative(ROOT, join(dir, e.name))] : [])
    expect(built(join(ROOT, 'dist', 'src')).filter((f) => !packed.includes(f))).toEqual([])
    expect(packed).toContain('dist/src/store/sqlite/reader-worker.js')
    const reads = runtimeReads()
    expect(reads).toEqual(expect.arrayContaining(['dashboards', 'mappings', 'package.json', 'parsers/messages', 'parsers/patterns.yaml', 'ui/index.html']))
    for (const r of reads) expect(existsSync(join(installed, r)), `${r} (read through packageRoot()) is in the package`).toBe(true)
    // Sources and tests stay out (the two sample logs `run` falls back to excepted).
    expect(packed.filter((f) => f.startsWith('src/') || (f.startsWith('test/') && !f.startsWith('test/fixtures/kea/kea-2.2.0-')))).toEqual([])
  })

  it('the linked command runs: --version, and run reading the sample log into SQLite with the UI and event search', async () => {
    expect((await run(bin, ['--version'])).stdout.trim()).toBe(pkg.version)
    const dir = mkdtempSync(join(tmpdir(), 'kt-pack-run-'))
    const config = join(dir, 'keatrail.yaml')
    const sample = join(installed, 'test', 'fixtures', 'kea', 'kea-2.2.0-dhcp4-INFO-full.log')
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\napi: { port: 0 }\nsources:\n  - { type: file, name: k4, include: ["${sample}"], timeZone: UTC }\n`)
    const proc = spawn(bin, ['run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exit = new Promise<number | null>((resolve) => proc.on('exit', resolve))
    try {
      const url = (): string | undefined => (/"url":"([^"]+)"/.exec(err))?.[1]
      await expect.poll(url, { timeout: 20_000 }).toBeDefined()
      const ui = await fetch(`${url() as string}/`)
      expect(ui.status).toBe(200)
      expect(await ui.text()).toBe(readFileSync(join(ROOT, 'ui', 'index.html'), 'utf8'))
      const total = async (): Promise<number> => {
        const r = await fetch(`${url() as string}/api/v1/events?from=2000-01-01T00:00:00Z&size=1`)
        return (await r.json() as { total: { value: number } }).total.value
      }
      await expect.poll(total, { timeout: 20_000 }).toBe(206)
    } finally {
      proc.kill('SIGTERM')
    }
    expect(await exit).toBe(0)
    expect(statSync(join(dir, 'data', 'keatrail.db')).isFile()).toBe(true)
  }, 60_000)
})
