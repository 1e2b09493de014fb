{
  "targets": [
    {
      "target_name": "nydus_codec",
      "sources": ["native/codec.c"],
      "cflags": ["-O3", "-Wall"],
      "libraries": ["-lzstd", "-llz4"]
    }
  ]
}
