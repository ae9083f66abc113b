# The two commands of the README. Each creates or reuses .venv by itself.
.PHONY: demo test native clean

demo:
	@scripts/ensure-venv
	@scripts/demo

test:
	@scripts/ensure-venv
	.venv/bin/python -m pytest $(PYTEST_ARGS)

native:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j

clean:
	rm -rf build build.log runs
