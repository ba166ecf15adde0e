// Runs a wasm32-wasip1 program under node's WASI: node wasi-run.mjs PROGRAM.wasm DIR ARGS...
// DIR is made visible to the program under the same path (for snapshot and replay files).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, exit } from 'node:process';

const [program, dir, ...args] = argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: ['arch-check', ...args],
  env: {},
  preopens: { [dir]: dir },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
