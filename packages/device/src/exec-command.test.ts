import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandResultSchema, commandTopics, type CommandRequest } from '@bulwark/protocol';
import { createCommandRouter } from './commands.ts';
import { checkExecutable, execCommandHandler, parseExecMapping } from './exec-command.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-exec-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** Runs `path` as command `name` through a router, as the agent does; resolves with the published result. */
async function runCommand(path: string, request: Partial<CommandRequest> = {}, maxRuntimeMs?: number) {
  const router = createCommandRouter({
    deviceId: 'pump-17',
    handlers: { job: execCommandHandler(path, { maxRuntimeMs }) },
    publish: () => Promise.resolve(),
  });
  const payload = JSON.stringify({
    id: 'cmd-42',
    issuedBy: 'cli',
    issuedAt: Date.now(),
    expiresAt: Date.now() + 30_000,
    ...request,
  });
  const result = await router.handle(commandTopics.request('pump-17', 'job'), payload);
  return commandResultSchema.parse(result);
}

describe('--exec programs', () => {
  it('gets the data as JSON on stdin and the command id and name in its environment; JSON stdout is the result', async () => {
    const path = await script(
      'echo-json.sh',
      'data=$(cat)\nprintf \'{"id":"%s","name":"%s","data":%s}\\n\' "$BULWARK_COMMAND_ID" "$BULWARK_COMMAND_NAME" "$data"',
    );
    expect(await runCommand(path, { data: { rpm: 900 } })).toEqual({
      id: 'cmd-42',
      status: 'ok',
      result: { id: 'cmd-42', name: 'job', data: { rpm: 900 } },
    });
  });

  it('gives text stdout as a string, and null data when the command has none', async () => {
    const path = await script('text.sh', 'read -r line\necho "got $line"');
    expect(await runCommand(path)).toEqual({ id: 'cmd-42', status: 'ok', result: 'got null' });
  });

  it('caps stdout at 8 KiB', async () => {
    const path = await script('chatty.sh', 'head -c 20000 /dev/zero | tr "\\0" a');
    const result = await runCommand(path);
    expect(result.status).toBe('ok');
    expect(result.result).toBe('a'.repeat(8 * 1024));
  });

  it('fails with the last line of stderr on a non-zero exit', async () => {
    const path = await script('fail.sh', 'echo "checking valve" >&2\necho "valve 3 stuck" >&2\nexit 3');
    expect(await runCommand(path)).toEqual({ id: 'cmd-42', status: 'failed', message: 'valve 3 stuck' });
  });

  it('fails with the exit code when stderr is empty', async () => {
    const path = await script('quiet-fail.sh', 'exit 2');
    expect(await runCommand(path)).toEqual({ id: 'cmd-42', status: 'failed', message: 'exited with code 2' });
  });

  it('kills the program (and what it started) at the command expiry: failed "timed out"', async () => {
    const path = await script('hang.sh', 'sleep 30\necho never');
    const started = Date.now();
    expect(await runCommand(path, { expiresAt: Date.now() + 300 })).toEqual({
      id: 'cmd-42',
      status: 'failed',
      message: 'timed out',
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('kills the program after maxRuntimeMs when the command never expires', async () => {
    const path = await script('hang2.sh', 'sleep 30');
    expect(await runCommand(path, { expiresAt: null }, 200)).toMatchObject({
      status: 'failed',
      message: 'timed out',
    });
  });

  it('fails when the program cannot be started', async () => {
    expect(await runCommand(join(dir, 'missing.sh'))).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(/^cannot run .*missing\.sh: .*ENOENT/) as unknown,
    });
  });
});

describe('--exec NAME=PATH', () => {
  it('parses a mapping and validates the command name', () => {
    expect(parseExecMapping('restart=/usr/bin/restart-pump')).toEqual({
      name: 'restart',
      path: '/usr/bin/restart-pump',
    });
    expect(parseExecMapping('a=b=c')).toEqual({ name: 'a', path: 'b=c' });
    expect(() => parseExecMapping('restart')).toThrow(/expected NAME=PATH/);
    expect(() => parseExecMapping('=x')).toThrow(/expected NAME=PATH/);
    expect(() => parseExecMapping('result=/bin/true')).toThrow(/reserved/);
    expect(() => parseExecMapping('a/b=/bin/true')).toThrow(/command name must be/);
  });

  it('checks that a path names an executable file', async () => {
    const path = await script('ok.sh', 'true');
    await expect(checkExecutable(path)).resolves.toBeUndefined();
    await expect(checkExecutable(join(dir, 'nope'))).rejects.toThrow(/is not an executable file/);
    await expect(checkExecutable('true')).resolves.toBeUndefined(); // looked up in PATH when it runs
  });
});
