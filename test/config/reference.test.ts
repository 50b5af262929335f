import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { configFields, configSections, renderConfigReference } from '../../src/config/reference.js'
import { packageRoot } from '../../src/paths.js'

describe('config reference (docs/CONFIG.md)', () => {
  it('every field of the composed config schema has a .describe() text', () => {
    const undescribed = configFields().filter((f) => f.description === undefined || f.description.trim() === '').map((f) => f.path)
    expect(undescribed, 'fields without .describe(): give each a description where its schema is declared').toEqual([])
  })

  it('lists each kind of store and source with its own fields', () => {
    const titles = configSections().map((s) => s.title)
    expect(titles).toEqual(expect.arrayContaining(['store with type: sqlite', 'store with type: elasticsearch', 'sources[] with type: file', 'sources[] with type: syslog', 'sources[] with type: journal']))
    const fields = configFields()
    expect(fields).toContainEqual(expect.objectContaining({ path: 'dataDir', default: './data', type: 'string (not empty)' }))
    expect(fields).toContainEqual(expect.objectContaining({ path: 'api.port', default: 8080, type: 'integer (0–65535)' }))
    expect(fields).toContainEqual(expect.objectContaining({ path: 'sources[].include', required: true }))
  })

  it('docs/CONFIG.md is what the schema renders now', () => {
    const committed = readFileSync(join(packageRoot(), 'docs', 'CONFIG.md'), 'utf8')
    // A failure here means a schema or a .describe() text changed without the reference.
    expect(committed === renderConfigReference(), 'docs/CONFIG.md is out of date: run `npm run docs:config` and commit it').toBe(true)
  })
})
