"""Run inside Blender: import a NextFace mesh (.glb or .obj), render one frame, report facts.

    blender --background --factory-startup --python blender_check.py -- MESH REPORT.json RENDER.png

Writes REPORT.json: the import's bounding box in Blender's world (metres, Z up), the image
bound to the Principled BSDF's base colour, and the share of covered pixels and their mean
colour in a small Cycles render (from the file's photo camera when it has one, else from
a camera placed in front of the face).
"""

import json
import math
import sys

import bpy
import mathutils

mesh_path, report_path, render_path = sys.argv[sys.argv.index("--") + 1:]
if mesh_path.endswith(".glb"):
    import numpy

    if "bool" not in numpy.__dict__:  # Debian 12's Blender 3.4.1 glTF importer uses numpy.bool, gone since NumPy 1.24
        numpy.bool = bool
bpy.ops.wm.read_factory_settings(use_empty=True)
if mesh_path.endswith(".glb"):
    bpy.ops.import_scene.gltf(filepath=mesh_path)
else:
    bpy.ops.wm.obj_import(filepath=mesh_path)  # OBJ +Y up → Blender +Z up (the importer's defaults)

scene = bpy.context.scene
meshes = [o for o in scene.objects if o.type == "MESH"]
corners = [o.matrix_world @ mathutils.Vector(c) for o in meshes for c in o.bound_box]
low = [min(c[i] for c in corners) for i in range(3)]
high = [max(c[i] for c in corners) for i in range(3)]

base_colour = None
material = meshes[0].active_material
for node in material.node_tree.nodes:
    if node.type == "BSDF_PRINCIPLED":
        for link in node.inputs["Base Color"].links:
            if link.from_node.type == "TEX_IMAGE" and link.from_node.image is not None:
                image = link.from_node.image
                base_colour = {"name": image.name, "size": list(image.size), "filepath": image.filepath}

cameras = [o for o in scene.objects if o.type == "CAMERA"]
if cameras:
    camera = cameras[0]
else:
    data = bpy.data.cameras.new("front")
    camera = bpy.data.objects.new("front", data)
    scene.collection.objects.link(camera)
    centre = mathutils.Vector([(a + b) / 2 for a, b in zip(low, high)])
    size = max(h - l for h, l in zip(high, low))
    camera.location = centre + mathutils.Vector((0.0, -2.5 * size, 0.0))  # in front: the face looks along Blender -Y
    camera.rotation_euler = (math.pi / 2.0, 0.0, 0.0)  # looking along +Y, +Z up
scene.camera = camera

world = bpy.data.worlds.new("white")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
scene.world = world
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 4
scene.cycles.use_denoising = False  # Debian builds Cycles without OpenImageDenoise
scene.render.resolution_x = scene.render.resolution_y = 96
scene.render.resolution_percentage = 100
scene.render.film_transparent = True
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_mode = "RGBA"
scene.render.filepath = render_path
bpy.ops.render.render(write_still=True)

pixels = list(bpy.data.images.load(render_path).pixels)
alpha = pixels[3::4]
covered = [i for i, a in enumerate(alpha) if a > 0.5]
mean = [sum(pixels[4 * i + c] for i in covered) / max(len(covered), 1) for c in range(3)]
with open(report_path, "w") as f:
    json.dump({"bbox_min": low, "bbox_max": high, "base_colour": base_colour, "cameras": len(cameras),
               "covered_fraction": len(covered) / len(alpha), "covered_mean_rgb": mean,
               "objects": [o.name for o in meshes]}, f)
