// Package recordings writes call recordings to disk, off the packet path, and reads the
// WAV prompts (disclaimers) that media plays.
//
// # What it owns
//
// The recordings tree under one directory, one stereo WAV per call:
//
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav       finished
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav.part  being written, or left by a crash
//
// The date is the UTC date the recording started. Customer and call ids are single safe
// path components ([A-Za-z0-9_-], 1 to 64 characters), checked by Open. Each file is a
// canonical 44-byte-header WAV: PCM, 2 channels, 8000 Hz, 16 bits; the left channel is the
// caller, the right the business line.
//
// It does not decide whether a call is recorded, play the disclaimer, know RTP, or keep
// the call record (the caller stores Info with it). Encryption at rest is to come here too,
// and is not done yet.
//
// # Reading back, exports and removal
//
// Opener (files.go) is the one reader of finished recordings for anything but the admin
// API's streaming: how a file is kept at rest is known there alone. Exporter (export.go)
// writes a customer's export archive, a zip streamed from the store's records and the
// recordings read through an OpenFunc (Opener by default), to a writer or durably to a file
// in an export directory. RemoveCustomer deletes a customer's recordings directory.
//
// # Data flow
//
// The media relay copies each packet's G.711 payload, as µ-law, into a per-call one-second
// Chunk aligned by RTP timestamp (NewChunk, then Submit). Submit never blocks: it queues
// the chunk to the recording's writer goroutine, or, when that queue is full, drops the
// chunk and counts it. Recording data is dropped before media ever waits. Each writer
// decodes µ-law to PCM16 in a reused buffer and writes chunk k at byte 44 + k*32000;
// seconds that never arrived are written as silence, so the two channels and later audio
// stay in place. Chunks reuse a pool; the steady state allocates nothing.
//
// Why µ-law on the packet path and PCM16 on disk: µ-law is what arrives (or is one table
// lookup from A-law), so the packet path only copies bytes (8 KB per channel per second)
// and does no arithmetic. Browsers, the admin UI's player and every tool play PCM16 WAV,
// while µ-law WAV (format 7) is not played by all of them. PCM16 costs 32 KB/s per call on
// disk, twice µ-law: about 115 MB per recorded call hour, 1,000 concurrent calls write
// 32 MB/s. Decoding is done in the writer goroutines, not on the packet path.
//
// # Crash safety
//
// Writes are plain buffered writes (page cache); nothing is fsynced while a call runs.
// Finish writes the real sizes into the header, fsyncs the file, renames .wav.part to
// .wav and fsyncs the directory, so a .wav that exists is complete and durable (Open
// fsyncs the parent of each directory it creates, so the path survives too). After a
// SIGKILL or power loss, .wav.part files remain with a placeholder header and whatever
// audio reached the disk. Repair, run at start before recording begins, turns each into a
// valid .wav holding all whole frames found (a torn tail of the last write is cut off;
// a file shorter than the header becomes an empty WAV) and returns an Info for each so
// the call records can be updated. Finished .wav files are never modified.
//
// # Caveats
//
//   - Finish and Abort block (queue drain, two fsyncs, hashing the file); call them from
//     the call's owner goroutine, never from the packet path, and only after the packet
//     path stopped submitting chunks for that recording.
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
