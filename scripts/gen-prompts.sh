#!/usr/bin/env bash
# Regenerates configs/prompts/disclaimer.wav, the default recording disclaimer: Dutch, a
# short pause, then English, spoken by espeak-ng and converted by sox to the format trackline
# plays (8000 Hz, mono, 16-bit PCM WAV, peak -3 dBFS, no metadata chunk).
#
# Needs espeak-ng and sox (Debian: apt-get install --no-install-recommends espeak-ng sox).
# The WAV is committed; CI does not run this script. Run it again after changing the texts
# and commit the result. The output is reproducible (no dither).
set -euo pipefail

cd "$(dirname "$0")/.."

NL_TEXT=${NL_TEXT:-"Dit gesprek wordt opgenomen voor kwaliteitsdoeleinden."}
EN_TEXT=${EN_TEXT:-"This call is recorded for quality purposes."}
OUT=${OUT:-configs/prompts/disclaimer.wav}
PAUSE=0.6 # seconds between the two languages
SPEED=150 # espeak-ng words per minute (default 175; slower is clearer on a phone line)

for tool in espeak-ng sox; do
	if ! command -v "$tool" >/dev/null; then
		echo "gen-prompts: $tool not found (apt-get install --no-install-recommends espeak-ng sox)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# espeak-ng writes 22050 Hz mono 16-bit WAV.
espeak-ng -v nl -s "$SPEED" -w "$tmp/nl.wav" "$NL_TEXT"
espeak-ng -v en -s "$SPEED" -w "$tmp/en.wav" "$EN_TEXT"

# Bring each part to 8 kHz and trim espeak's leading and trailing silence, so the pause is
# exactly PAUSE; then join them with the pause, pad 0.15 s of silence at both ends (no
# click when playback starts) and normalise the whole to a -3 dBFS peak.
# -D: no dither (reproducible output); --comment "": no LIST/INFO chunk.
for lang in nl en; do
	sox -D "$tmp/$lang.wav" -r 8000 -c 1 -b 16 "$tmp/$lang-8k.wav" \
		silence 1 0.02 0.1% reverse silence 1 0.02 0.1% reverse
done
sox -D -n -r 8000 -c 1 -b 16 "$tmp/pause.wav" trim 0 "$PAUSE"
sox -D "$tmp/nl-8k.wav" "$tmp/pause.wav" "$tmp/en-8k.wav" \
	--comment "" -r 8000 -c 1 -b 16 -e signed-integer -t wavpcm "$OUT" pad 0.15 0.15 norm -3

echo "gen-prompts: wrote $OUT ($(stat -c %s "$OUT") bytes, $(soxi -D "$OUT") s)"
