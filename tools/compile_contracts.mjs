#!/usr/bin/env node
// Compile the Solidity test contracts in tests/data/contracts/ into one JSON artifact per
// contract, written beside the sources: tests/data/contracts/<Name>.json with
//   {"contractName", "sourceName", "abi", "bytecode", "deployedBytecode",
//    "methodIdentifiers", "compiler"}
// ("bytecode" and "deployedBytecode" are 0x-prefixed hex).
//
// Run from the repository root, with the solcjs npm package installed outside the repo:
//
//   npm install --prefix /tmp/solc solc@0.8.28 && NODE_PATH=/tmp/solc/node_modules node tools/compile_contracts.mjs
//
// `node tools/compile_contracts.mjs --check` compiles and compares with the committed
// artifacts instead of writing them (exit 1 on any difference).
//
// Settings: solc standard JSON, optimizer on with 200 runs, evmVersion "cancun" (needed for
// TSTORE/TLOAD, MCOPY, BLOBHASH, BLOBBASEFEE). The compiler version is pinned (SOLC_VERSION
// below): another version gives other bytecode, so the script refuses it.
//
// Deterministic: the sources are read in sorted order under their bare file names (so the
// metadata hash at the end of the bytecode does not depend on where the repo is checked out),
// the artifacts hold no timestamps or paths, and JSON is written with fixed key order and a
// trailing newline. Running it twice gives byte-identical files.

import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SOLC_VERSION = "0.8.28";

// ESM `import` ignores NODE_PATH; a CommonJS require made here honours it.
const require = createRequire(import.meta.url);
let solc;
try {
  solc = require("solc");
} catch (e) {
  console.error(
    "cannot load the 'solc' package: install it outside the repo and point NODE_PATH at it:\n" +
      `  npm install --prefix /tmp/solc solc@${SOLC_VERSION} && ` +
      "NODE_PATH=/tmp/solc/node_modules node tools/compile_contracts.mjs",
  );
  process.exit(2);
}

const fullVersion = solc.version(); // e.g. 0.8.28+commit.7893614a.Emscripten.clang
const match = /^(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)/.exec(fullVersion);
const compilerVersion = match ? match[1] : fullVersion; // as recorded in the contract metadata
if (!compilerVersion.startsWith(SOLC_VERSION + "+")) {
  console.error(`solc ${fullVersion} loaded, but the artifacts are pinned to solc ${SOLC_VERSION}`);
  process.exit(2);
}

const check = process.argv.includes("--check");
const here = dirname(fileURLToPath(import.meta.url));
const contractsDir = resolve(here, "..", "tests", "data", "contracts");

const sourceNames = readdirSync(contractsDir)
  .filter((f) => f.endsWith(".sol"))
  .sort();
if (sourceNames.length === 0) {
  console.error(`no .sol files in ${contractsDir}`);
  process.exit(2);
}

const sources = {};
for (const name of sourceNames) {
  sources[name] = { content: readFileSync(join(contractsDir, name), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: {
      "*": {
        "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"],
      },
    },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));

let failed = false;
for (const err of output.errors ?? []) {
  const text = err.formattedMessage ?? err.message;
  if (err.severity === "error") {
    failed = true;
    console.error(text);
  } else {
    console.warn(text);
  }
}
if (failed) {
  process.exit(1);
}

// Sort an object's keys (one level) for stable output.
function sortKeys(obj) {
  return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]]));
}

const artifacts = new Map();
for (const sourceName of sourceNames) {
  const contracts = output.contracts?.[sourceName] ?? {};
  for (const contractName of Object.keys(contracts).sort()) {
    if (artifacts.has(contractName)) {
      console.error(`contract name ${contractName} defined twice; artifacts are named by contract`);
      process.exit(1);
    }
    const c = contracts[contractName];
    const artifact = {
      contractName,
      sourceName,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      methodIdentifiers: sortKeys(c.evm.methodIdentifiers ?? {}),
      compiler: compilerVersion,
    };
    artifacts.set(contractName, JSON.stringify(artifact, null, 2) + "\n");
  }
}

let stale = 0;
for (const [contractName, text] of artifacts) {
  const path = join(contractsDir, `${contractName}.json`);
  const rel = `tests/data/contracts/${contractName}.json`;
  if (check) {
    const current = existsSync(path) ? readFileSync(path, "utf8") : null;
    if (current !== text) {
      stale += 1;
      console.error(`${rel}: ${current === null ? "missing" : "differs from a fresh compile"}`);
    }
  } else {
    writeFileSync(path, text);
    console.log(`wrote ${rel}`);
  }
}
if (check) {
  if (stale) {
    process.exit(1);
  }
  console.log(`${artifacts.size} artifacts up to date (solc ${compilerVersion})`);
}
