import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/fixtures.js'

// `engines` must be true to the tree: the Node this suite runs on (CI's) is inside keatrail's
// range, and every runtime package that declares a range excluding it is named, with why it is
// acceptable, in docs/DEPENDENCIES.md. A dependency update that brings a new one fails here.

// npm's own semver (in the tree through npm's tooling): the range logic npm applies to engines.
const semver = createRequire(join(ROOT, 'package.json'))('semver') as { satisfies: (version: string, range: string) => boolean }

interface Manifest { name: string, version: string, engines?: { node?: string } }

describe('engines', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest

  it('package.json\'s range includes the Node the suite runs on', () => {
    expect(pkg.engines?.node).toBeDefined()
    expect(semver.satisfies(process.version, pkg.engines?.node as string)).toBe(true)
  })

  it('every runtime package that declares a Node range without this one is accounted for in docs/DEPENDENCIES.md', async () => {
    const { stdout } = await promisify(execFile)('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT })
    const excluding = new Set<string>()
    for (const dir of stdout.split('\n').slice(1).filter(Boolean)) {
      const m = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest
      const range = m.engines?.node
      if (range !== undefined && !semver.satisfies(process.version, range)) excluding.add(`${m.name} ${m.version.split('.')[0] ?? ''}`)
    }
    const doc = readFileSync(join(ROOT, 'docs', 'DEPENDENCIES.md'), 'utf8')
    expect([...excluding].filter((p) => !doc.includes(`**${p}**`)), `runtime packages whose engines exclude Node ${process.version}, not named in docs/DEPENDENCIES.md's "Node versions"`).toEqual([])
  })
})
