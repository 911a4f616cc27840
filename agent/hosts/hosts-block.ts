/**
 * The agent's block in /etc/hosts: alias names → virtual IPs, between two marker lines. Pure. Every byte outside the
 * block is kept as it was; the block is replaced where it stands, appended when there is none, removed on stop.
 */
export const BEGIN_MARKER = '# BEGIN ecs-service-connect-agent (managed: do not edit)';
export const END_MARKER = '# END ecs-service-connect-agent';

export interface HostsEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

export function renderHostsBlock(entries: readonly HostsEntry[]): string {
  const lines = [...entries].sort((a, b) => (a.names[0] ?? '').localeCompare(b.names[0] ?? '')).map((e) => `${e.ip}\t${e.names.join(' ')}`);
  return `${BEGIN_MARKER}\n${lines.map((l) => `${l}\n`).join('')}${END_MARKER}\n`;
}

/** `content` with the block set to `block` (null removes it). Lines outside the markers are untouched. */
export function applyHostsBlock(content: string, block: string | null): string {
  const begin = content.indexOf(`${BEGIN_MARKER}\n`);
  const endAt = begin < 0 ? -1 : content.indexOf(`${END_MARKER}\n`, begin);
  if (begin >= 0 && endAt >= 0) {
    const after = endAt + END_MARKER.length + 1;
    return `${content.slice(0, begin)}${block ?? ''}${content.slice(after)}`;
  }
  if (block === null) return content;
  const sep = content === '' || content.endsWith('\n') ? '' : '\n';
  return `${content}${sep}${block}`;
}
