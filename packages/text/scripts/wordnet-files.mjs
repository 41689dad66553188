// Writes user-style data files from Debian's WordNet for the README's runs:
//   node packages/text/scripts/wordnet-files.mjs <dir> [limit] [lexname,lexname,...]
// <dir>/lexnames.jsonl: {"text": gloss, "label": lexicographer class}
// <dir>/pairs.jsonl:    {"anchor": example sentence, "positive": its gloss, "negative": a gloss of the same class}
import { writeWordNetFiles } from '../dist/index.js';

const dir = process.argv[2] ?? 'data/wordnet';
const limit = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const lexnames = process.argv[4]?.split(',');
const written = await writeWordNetFiles(dir, {
  ...(limit === undefined ? {} : { limit }),
  ...(lexnames === undefined ? {} : { lexnames }),
});
console.log(
  `${written.classification}: ${written.records} glosses, ${written.classes} classes\n${written.pairs}: ${written.pairRecords} triplets`,
);
