// Package recordings writes call recordings to disk, off the packet path, and reads the
// WAV prompts (disclaimers) that media plays.
//
// # What it owns
//
// The recordings tree under one directory, one encrypted stereo WAV per call:
//
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav.enc       finished
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav.enc.part  being written, or left by a crash
//
// The date is the UTC date the recording started. Customer and call ids are single safe
// path components ([A-Za-z0-9_-], 1 to 64 characters), checked by Recorder.Open. What a
// file holds, once decrypted, is a canonical 44-byte-header WAV: PCM, 2 channels, 8000 Hz,
// 16 bits; the left channel is the caller, the right the business line.
//
// It does not decide whether a call is recorded, play the disclaimer, know RTP, or keep
// the call record (the caller stores Info with it). Retention is the caller's too: Remove,
// RemoveCall and RemoveCustomer erase files when told.
//
// # Encryption at rest
//
// Every file is encrypted with a key of its own, derived from its customer's recording key
// (package keyring) and a random salt in the file's header: AES-256-GCM in chunks of one
// second of audio (32,000 bytes), each chunk authenticated with its index and, for the
// last, a last-chunk flag, so that changed, reordered, removed or appended chunks are found
// (crypt.go documents the layout). The WAV header is not stored: it follows from the
// audio's length. Open reads the plain WAV back as an io.ReadSeeker, decrypting only the
// chunks a read touches, so the API serves Range requests without decrypting the whole
// file. Info.Size and Info.SHA256 are those of the plain WAV. Destroying a customer's key
// makes all of its recordings unreadable, copies in backups included; Remove also
// overwrites a file's header (its salt) before removing it, so one recording is shredded
// while the customer's key lives on. Encrypting costs about 10 µs per second of call in the
// writer goroutines (docs/benchmarks.md); a file is 176 bytes plus 16 bytes a second larger
// than the audio.
//
// # Reading back, exports and removal
//
// Open is the one reader of recording files. Opener (files.go) wraps it for exports, and
// the admin API streams through it. Exporter (export.go) writes a customer's export
// archive, a zip streamed from the store's records and the recordings read through
// Opener, to a writer or durably to a file in an export directory.
// RemoveCustomer deletes a customer's recordings directory; the Exporter's RemoveCustomer
// also destroys the customer's key (and, with WithExportObjects, deletes its objects).
//
// # Data flow
//
// The media relay copies each packet's G.711 payload, as µ-law, into a per-call one-second
// Chunk aligned by RTP timestamp (NewChunk, then Submit). Submit never blocks: it queues
// the chunk to the recording's writer goroutine, or, when that queue is full, drops the
// chunk and counts it. Recording data is dropped before media ever waits. Each writer
// decodes µ-law to PCM16 in a reused buffer and writes chunk k at byte 44 + k*32000;
// seconds that never arrived are written as silence, so the two channels and later audio
// stay in place. Chunks are reused, across garbage collections too; the steady state
// allocates nothing.
//
// Why µ-law on the packet path and PCM16 on disk: µ-law is what arrives (or is one table
// lookup from A-law), so the packet path only copies bytes (8 KB per channel per second)
// and does no arithmetic. Browsers, the admin UI's player and every tool play PCM16 WAV,
// while µ-law WAV (format 7) is not played by all of them. PCM16 costs 32 KB/s per call on
// disk, twice µ-law: about 115 MB per recorded call hour, 1,000 concurrent calls write
// 32 MB/s. Decoding is done in the writer goroutines, not on the packet path.
//
// # Object storage
//
// With an object store configured (Objects, object.go), finished recordings move to an
// S3-compatible bucket through minio-go: the Recorder hands each one over once it is durable
// (WithFinished(Objects.Enqueue)), Objects.Run uploads the .wav.enc as it is (still
// encrypted), confirms the stored object (size, ETag against the file's MD5, else a read back)
// and shreds the local file. The local files are the queue: Run scans the tree at start and
// every 10 minutes, so uploads survive restarts. Files (object_files.go) is where readers and
// erasures go: Open reads the local file or else the object (ranged GETs, so Range requests
// decrypt only what they touch); Remove, RemoveCall and RemoveCustomer delete the objects
// too, keeping a failed deletion as a marker that Run retries (object_delete.go). A nil
// *Objects is no object store. docs/cluster.md describes it for operators.
//
// # Crash safety
//
// Writes are plain buffered writes (page cache); nothing is fsynced while a call runs.
// Finish seals the last chunk as the last, fsyncs the file, renames .wav.enc.part to
// .wav.enc and fsyncs the directory, so a .wav.enc that exists is complete and durable
// (Recorder.Open fsyncs the parent of each directory it creates, so the path survives too).
// After a SIGKILL or power loss, .part files remain with whatever chunks reached the disk.
// Repair, run at start before recording begins, turns each into a valid .wav.enc holding
// the chunks from the first that decrypt (a torn tail is cut off; a file shorter than its
// header becomes an empty recording), seals the last of them as the last, and returns an
// Info for each so the call records can be updated. It needs the customer's key. Finished
// files are never modified.
//
// # Recordings of earlier builds
//
// Builds before encryption at rest wrote plain WAV files (<call>.wav, <call>.wav.part) whose
// records named the .wav. Recorder.MigratePlain (legacy.go), run at start after Repair,
// encrypts each into a .wav.enc, verifies it, points the record at it and only then zeroes
// and removes the plain file; a crash at any step is finished at the next run. Plain files
// of customers no longer in the store are zeroed and removed. Remove, RemoveCall and
// RemoveCustomer zero plain files whole (an encrypted file only needs its header zeroed).
//
// # Caveats
//
//   - Finish and Abort block (queue drain, two fsyncs, hashing the file); call them from
//     the call's owner goroutine, never from the packet path, and only after the packet
//     path stopped submitting chunks for that recording. FinishAsync does not wait for the
//     file: its function gets the outcome from the syncer once the batch is durable (the
//     switch completes the call's record then, so the call's goroutine ends at the
//     hang-up); that function must not block the syncer.
//   - Close lets the writers drain their queues, then leaves recordings still open as
//     .wav.part files for Repair.
//   - A recording is capped at Options.MaxDuration (default 12 h); a WAV cannot exceed
//     about 37 h of 8 kHz stereo PCM16.
//
// # Prompts
//
// ParsePrompt and LoadPrompt read a prompt: RIFF/WAVE, PCM, 8000 Hz, mono, 16 bits, at
// most 120 s, unknown chunks skipped. Errors say what is wrong and how to convert the file.
// The default disclaimer is configs/prompts/disclaimer.wav (made by scripts/gen-prompts.sh).
package recordings
