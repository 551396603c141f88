#!/usr/bin/env node
import 'reflect-metadata';
import { runCli } from './run-cli';

/** The `nestjs-rlock` executable: runs one command and exits with its code. */
void runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
}).then((code) => {
  process.exitCode = code;
});
