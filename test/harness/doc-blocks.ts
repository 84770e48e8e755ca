/**
 * The ```sh command blocks of the project's pages, with what the HTML comment before each
 * says about how it is checked (`<!-- checked: docs.test.ts -->`, `<!-- not run: ... -->`).
 * The packaging tier runs the `docs.test.ts` blocks; the end-to-end tier the `end-to-end` ones.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './dataplane.ts';

export interface DocBlock {
  file: string;
  line: number;
  /** What the comment before the block says: `docs.test.ts`, `end-to-end`, ... */
  check: string;
  script: string;
}

/** The ```sh blocks of `file` (only those of its `section`, up to the next `## `, if given). */
export function docBlocks(file: string, section?: string): DocBlock[] {
  let text = readFileSync(join(REPO_ROOT, file), 'utf8');
  let offset = 0;
  if (section !== undefined) {
    offset = text.indexOf(`\n${section}\n`);
    if (offset < 0) throw new Error(`${file} has no section "${section}"`);
    const end = text.indexOf('\n## ', offset + section.length + 2);
    text = text.slice(0, end < 0 ? undefined : end);
  }
  const found: DocBlock[] = [];
  const fence = /^```sh\n([\s\S]*?)^```$/gm;
  fence.lastIndex = offset;
  let previousEnd = offset;
  for (let match = fence.exec(text); match !== null; match = fence.exec(text)) {
    const before = text.slice(previousEnd, match.index).trimEnd();
    const comment = /<!--\s*(checked:\s*([\w.-]+)|not run:)[\s\S]*?-->$/.exec(before);
    found.push({
      file,
      line: text.slice(0, match.index).split('\n').length,
      check: comment === null ? 'unmarked' : (comment[2] ?? 'not run'),
      script: match[1]!,
    });
    previousEnd = match.index + match[0].length;
  }
  return found;
}

/** Every page with Kubernetes commands: the README's Kubernetes section and the docs. */
export function kubernetesDocBlocks(): DocBlock[] {
  return [
    ...docBlocks('README.md', '## Kubernetes'),
    ...docBlocks('docs/operations.md'),
    ...docBlocks('docs/architecture.md'),
  ];
}
