// Prints a checkpoint folder for the e2e run when the VSIX ships no model yet: the repo's test
// fixture if there is one, else a toy checkpoint written under the folder given as argv[2].
import { join, resolve } from 'node:path';
import { fixtureCheckpoint } from '../../src/locate';
import { writeToyCheckpoint } from './toy-checkpoint';

const root = resolve(__dirname, '..', '..');
console.log(fixtureCheckpoint(root) ?? writeToyCheckpoint(join(resolve(process.argv[2] ?? '.'), 'toy-gpt2')));
