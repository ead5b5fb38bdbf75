// Validates CSAF 2.0 documents with the official validator library
// (@secvisogram/csaf-validator-lib, validateStrict): the strict JSON
// schema test and every mandatory test (6.1.x) must pass. Set
// CSAF_OPTIONAL=1 to also run the optional tests (6.2.x), printed as
// warnings without failing (loading them takes about 15 s).
//
// Usage: node validate.mjs FILE.json...
// Exit status: 0 all valid, 1 a document failed, 2 usage or I/O error.
import { readFile } from 'node:fs/promises'
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import { csaf_2_0_strict } from '@secvisogram/csaf-validator-lib/schemaTests.js'

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE.json...')
  process.exit(2)
}

const required = [csaf_2_0_strict, ...Object.values(mandatory)]
const advisory = process.env.CSAF_OPTIONAL
  ? Object.values(await import('@secvisogram/csaf-validator-lib/optionalTests.js'))
  : []
let failed = 0
for (const file of files) {
  let doc
  try {
    doc = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    console.error(`${file}: cannot read: ${err.message}`)
    process.exit(2)
  }
  const res = await validateStrict(required, doc)
  const opt = await validateStrict(advisory, doc)
  for (const t of res.tests) {
    for (const e of t.errors) console.log(`${file}: FAIL ${t.name} ${e.instancePath}: ${e.message}`)
    for (const w of t.warnings) console.log(`${file}: warning ${t.name} ${w.instancePath}: ${w.message}`)
  }
  for (const t of opt.tests) {
    for (const e of [...t.errors, ...t.warnings]) console.log(`${file}: warning (optional) ${t.name} ${e.instancePath}: ${e.message}`)
  }
  console.log(`${file}: ${res.isValid ? 'valid' : 'INVALID'} (${res.tests.length} tests: strict schema + mandatory)`)
  if (!res.isValid) failed++
}
process.exit(failed ? 1 : 0)
