import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from './main.ts';

test('an unknown command is refused with status 2', async () => {
  assert.equal(await main(['no-such-command']), 2);
});
