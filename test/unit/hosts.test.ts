/** The hosts block rules (pure): only a well-formed block is the agent's; every other line is the user's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHostsBlock, BEGIN_MARKER, END_MARKER, findHostsBlocks, renderHostsBlock } from '../../agent/hosts/hosts-block.ts';

const block = renderHostsBlock([{ ip: '127.255.0.1', names: ['web', 'web.demo.local'] }]);

test('a begin marker without its end marker is a user line: the block goes after it, and removing the block keeps it and the lines after it', () => {
  const original = `127.0.0.1 localhost\n${BEGIN_MARKER}\n10.0.0.5 build-server\n10.0.0.6 printer\n`;
  const withBlock = applyHostsBlock(original, block);
  assert.equal(withBlock, `${original}${block}`);
  assert.equal(applyHostsBlock(withBlock, null), original);
});

test('markers around a line the agent does not write (a comment, a blank line) are not a block, and are kept', () => {
  for (const inside of ['# my note\n', '\n', '10.0.0.5  two-spaces\n', '10.0.0.5\tname # comment\n']) {
    const content = `${BEGIN_MARKER}\n${inside}${END_MARKER}\n`;
    assert.deepEqual(findHostsBlocks(content), [], JSON.stringify(inside));
    assert.equal(applyHostsBlock(content, null), content);
  }
});

test('a CRLF block is recognised and replaced with CRLF line endings; a CRLF file gets a CRLF block', () => {
  const crlf = `127.0.0.1 localhost\r\n${BEGIN_MARKER}\r\n127.255.0.9\told\r\n${END_MARKER}\r\n10.0.0.1 after\r\n`;
  assert.equal(applyHostsBlock(crlf, block), `127.0.0.1 localhost\r\n${block.replace(/\n/g, '\r\n')}10.0.0.1 after\r\n`);
  assert.equal(applyHostsBlock('127.0.0.1 localhost\r\n', block), `127.0.0.1 localhost\r\n${block.replace(/\n/g, '\r\n')}`);
});

test('a second well-formed block (left when an earlier agent missed the first) is removed; the first is replaced where it stands', () => {
  const old = renderHostsBlock([{ ip: '127.255.0.9', names: ['old'] }]);
  const content = `a.b 1\n${old}10.0.0.1 middle\n${old}`.replace('a.b 1', '127.0.0.1 localhost');
  assert.equal(applyHostsBlock(content, block), `127.0.0.1 localhost\n${block}10.0.0.1 middle\n`);
  assert.equal(applyHostsBlock(content, null), '127.0.0.1 localhost\n10.0.0.1 middle\n');
});

test('an end marker with no line ending (a file cut short) is not a block: a new one is added on a line of its own', () => {
  const content = `${BEGIN_MARKER}\n127.255.0.1\tweb\n${END_MARKER}`;
  assert.equal(applyHostsBlock(content, block), `${content}\n${block}`);
});
