module blobcache.bench/link-emulator

go 1.23
