/**
 * Writes the agent's block into the hosts file in place: in a container /etc/hosts is a bind mount, so it is
 * rewritten through the same inode (never replaced by a rename), and only when its content changes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { AgentError } from '../errors.ts';
import { applyHostsBlock } from './hosts-block.ts';

export async function writeHostsBlock(path: string, block: string | null): Promise<boolean> {
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || block === null) {
      if (block === null) return false;
      throw new AgentError('AGENT_ERR_WRITE', `APPNET_HOSTS_FILE="${path}": cannot be read (${(err as Error).message})`, { cause: err });
    }
    content = '';
  }
  const next = applyHostsBlock(content, block);
  if (next === content) return false;
  try {
    await writeFile(path, next); // O_TRUNC on the same inode: safe for a bind-mounted file
  } catch (err) {
    throw new AgentError('AGENT_ERR_WRITE', `APPNET_HOSTS_FILE="${path}": cannot be written (${(err as Error).message})`, { cause: err });
  }
  return true;
}
